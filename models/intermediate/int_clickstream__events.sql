-- Clickstream events with their funnel stage (1 = page_view ... 5 = purchase).
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
    device
from {{ ref('stg_landing__clickstream') }}
