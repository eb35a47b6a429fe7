# The Rocket.Chat body without its transcript: who, when, how it ended.
{
  body: {
    type, _id, createdAt, closedAt, tags,
    visitor: {name: .visitor.name, email: .visitor.email[0].address},
    agent: .agent.username,
    messages: ((.messages // []) | length)
  }
}
