-- What one run deletes from a daily mart before appending the rebuilt days (the replace_window
-- pre-hook), for the current --vars. Compile to see it per target:
--   dbt compile --select replace_window_preview --vars '{min_date: 2026-03-03, max_date: 2026-03-04}'
delete from {{ ref('fct_daily_revenue') }} where {{ in_window('order_date') }}
