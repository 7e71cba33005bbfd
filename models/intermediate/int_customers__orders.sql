-- Per customer: lifetime order figures (orders not cancelled count as placed).
select
    customer_id,
    min(ordered_at) as first_order_at,
    max(ordered_at) as last_order_at,
    count(case when order_status <> 'cancelled' then order_id end) as lifetime_orders,
    coalesce(sum(case when order_status <> 'cancelled' then order_total end), 0) as lifetime_revenue
from {{ ref('stg_shop__orders') }}
group by customer_id
