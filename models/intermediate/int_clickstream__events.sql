-- Clickstream events as they stand now, with their funnel stage (1 = page_view ... 5 = purchase).
-- A re-uploaded landing object needs nothing here: the landing loader keeps only each object's
-- newest version in bronze, replacing the earlier version's rows in one Delta commit
-- (docs/ingestion-batch.md), so an event a correction dropped or moved is gone from its old day.
-- Which days that touches is int_restated_dates' business (from the manifest).
-- An event_id delivered in two objects (a producer retry) counts once: the first load wins.
-- The window is partitioned by event_date, so a date filter on this view still prunes bronze.
with events as (
    select * from {{ ref('stg_landing__clickstream') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by event_date, event_id order by dlt_load_id, object_key, line_number
        ) as occurrence
    from events
)

select
    event_id,
    event_type,
    case event_type
        when 'page_view' then 1
        when 'product_view' then 2
        when 'add_to_cart' then 3
        when 'checkout_start' then 4
        when 'purchase' then 5
    end as funnel_stage,
    event_at,
    event_date,
    session_id,
    customer_id,
    product_id,
    order_id,
    page_url,
    referrer,
    campaign_id,
    device,
    object_key
from ranked
where occurrence = 1
