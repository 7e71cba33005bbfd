-- Per customer: lifetime order figures (orders not cancelled count as placed); revenue in USD,
-- each order converted at its order date's rate.
with orders as (
    select * from {{ ref('stg_shop__orders') }}
),

rates as (
    select * from {{ ref('int_currency_rates') }}
)

select
    orders.customer_id,
    min(orders.ordered_at) as first_order_at,
    max(orders.ordered_at) as last_order_at,
    count(case when orders.order_status <> 'cancelled' then orders.order_id end) as lifetime_orders,
    coalesce(
        sum(
            case
                when orders.order_status <> 'cancelled'
                    then {{ to_usd('orders.order_total', 'rates.usd_per_unit') }}
            end
        ),
        0
    ) as lifetime_revenue
from orders
left join rates on {{ rate_applies('rates', 'orders.currency', 'orders.order_date') }}
group by orders.customer_id
