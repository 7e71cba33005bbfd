-- fct_daily_revenue next to the same figures recomputed from the current orders in staging (in
-- USD at each order date's rate): every row should show zero differences (the end-to-end test does
-- the same against PostgreSQL).
with rates as (
    select * from {{ ref('int_currency_rates') }}
),

recomputed as (
    select
        orders.order_date,
        count(*) as orders,
        sum({{ to_usd('orders.order_total', 'rates.usd_per_unit') }}) as gross_revenue
    from {{ ref('stg_shop__orders') }} as orders
    left join rates on {{ rate_applies('rates', 'orders.currency', 'orders.order_date') }}
    where orders.order_status <> 'cancelled'
    group by orders.order_date
)

select
    coalesce(mart.order_date, recomputed.order_date) as order_date,
    coalesce(mart.orders, 0) - coalesce(recomputed.orders, 0) as orders_difference,
    coalesce(mart.gross_revenue, 0) - coalesce(recomputed.gross_revenue, 0) as revenue_difference
from {{ ref('fct_daily_revenue') }} as mart
full outer join recomputed on mart.order_date = recomputed.order_date
order by 1
