-- fct_daily_revenue next to the same figures recomputed from the current orders in staging: every
-- row should show zero differences (the end-to-end test does the same against PostgreSQL).
with recomputed as (
    select
        order_date,
        count(*) as orders,
        sum(order_total) as gross_revenue
    from {{ ref('stg_shop__orders') }}
    where order_status <> 'cancelled'
    group by order_date
)

select
    coalesce(mart.order_date, recomputed.order_date) as order_date,
    coalesce(mart.orders, 0) - coalesce(recomputed.orders, 0) as orders_difference,
    coalesce(mart.gross_revenue, 0) - coalesce(recomputed.gross_revenue, 0) as revenue_difference
from {{ ref('fct_daily_revenue') }} as mart
full outer join recomputed on mart.order_date = recomputed.order_date
order by 1
