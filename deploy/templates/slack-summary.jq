# Slack, Mattermost or a Rocket.Chat incoming webhook: one message with a transcript summary.
{
  body: {
    text: (
      "*\(.type)* \(._id): \(.visitor.name // "a visitor") with \(.agent.name // .agent.username // "no agent yet")"
      + " (\((.messages // []) | length) messages)"
      + (if (.messages // []) | length > 0
         then "\n> \(.messages[-1].username): \(.messages[-1].msg)" else "" end)
    )
  }
}
