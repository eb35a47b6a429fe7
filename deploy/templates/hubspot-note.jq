# HubSpot: a note on the CRM (POST /crm/v3/objects/notes); the endpoint's URL is
# https://api.hubapi.com, its auth a private app token: --header "Authorization=Bearer pat-..."
{
  path: "/crm/v3/objects/notes",
  body: {
    properties: {
      hs_timestamp: (.closedAt // .lastMessageAt // .createdAt),
      hs_note_body: (
        "Chat \(._id) with \(.visitor.name // "a visitor") (\(.visitor.email[0].address // "no email"))\n"
        + ([.messages[]? | "\(.username): \(.msg)"] | join("\n"))
      )
    }
  }
}
