"""omnihooks: Faust agents, session state, webhook delivery, dead letters, CLI."""
