"""Tools for a developer's machine, not shipped in the container image: the embedded Kafka
broker (`omnihooks kafka`), the demo conversation (`omnihooks demo`) and a demo receiver
(`omnihooks receive`)."""
