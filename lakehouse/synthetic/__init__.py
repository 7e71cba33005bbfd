"""Synthetic e-commerce data: deterministic generators for every source, a CDC load simulator, the API.

Modules: `entities` (the one entry point: `generate`, `generate_starter`), `oltp` and `orders`
(PostgreSQL shop schema), `marketing` (campaigns, ad spend, paged reads), `dynamo` (carts, sessions,
reviews), `landing` (S3 clickstream and partner feeds), `simulate` (live changes), `schema`
(`ensure_schema`), `checks` (integrity rules, fingerprints), `api` and `commands` (HTTP and CLI).
See docs/synthetic-data.md.
"""
