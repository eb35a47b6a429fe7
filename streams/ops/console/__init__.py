"""`omnihooks console`: the operators' web page over Kafka and the workers' /metrics.

A pure part (samples: the metrics history and its window arithmetic; access: tokens,
sessions, CSRF; pages: the HTML) and two edges (reads: Kafka with throwaway consumers that
join no group; server: aiohttp). It keeps no database: what it shows is on the topics or on
the workers' pages, and what it changes is written to the topics the CLI writes.
"""
