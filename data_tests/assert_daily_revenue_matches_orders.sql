{{ config(meta={'dagster': {'ref': {'name': 'fct_daily_revenue'}}}) }}

-- fct_daily_revenue agrees with fct_orders for every order date (both are rebuilt per window).
with from_orders as (
    select
        order_date,
        count(*) as orders,
        sum(order_total_usd) as gross_revenue
    from {{ ref('fct_orders') }}
    where counts_as_revenue
    group by order_date
)

select
    coalesce(daily.order_date, from_orders.order_date) as order_date,
    daily.orders,
    from_orders.orders as orders_in_fct_orders,
    daily.gross_revenue,
    from_orders.gross_revenue as gross_revenue_in_fct_orders
from {{ ref('fct_daily_revenue') }} as daily
full outer join from_orders on daily.order_date = from_orders.order_date
where coalesce(daily.orders, 0) <> coalesce(from_orders.orders, 0)
    or abs(coalesce(daily.gross_revenue, 0) - coalesce(from_orders.gross_revenue, 0)) >= 0.005
