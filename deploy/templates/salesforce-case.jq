# Salesforce: a Case per closed chat (POST /services/data/v60.0/sobjects/Case); the
# endpoint's URL is the org's instance URL, its auth OAuth2 client credentials.
{
  path: "/services/data/v60.0/sobjects/Case",
  body: {
    Subject: "Live chat \(._id) with \(.visitor.name // "a visitor")",
    Origin: "Chat",
    Status: (if .closedAt then "Closed" else "New" end),
    SuppliedName: .visitor.name,
    SuppliedEmail: .visitor.email[0].address,
    Description: ([.messages[]? | "[\(.ts)] \(.username): \(.msg)"] | join("\n"))
  }
}
