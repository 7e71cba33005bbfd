{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['order_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('order_date', restated=true) }}",
        tags=['daily']
    )
}}

-- Revenue per UTC order date. Revenue orders = orders whose status is not 'cancelled'
-- (returned orders included in gross revenue, excluded from net revenue). Days without any
-- order have no row.
with orders as (
    select * from {{ ref('fct_orders') }}
    where {{ in_window_or_restated('order_date') }}
),

daily as (
    select
        order_date,
        count(case when counts_as_revenue then order_id end) as orders,
        count(case when is_cancelled then order_id end) as cancelled_orders,
        count(distinct case when counts_as_revenue then customer_id end) as customers,
        coalesce(sum(case when counts_as_revenue then units end), 0) as items_sold,
        coalesce(sum(case when counts_as_revenue then order_total end), 0) as gross_revenue,
        coalesce(
            sum(case when order_status not in ('cancelled', 'returned') then order_total end), 0
        ) as net_revenue
    from orders
    group by order_date
)

select
    order_date,
    orders,
    cancelled_orders,
    customers,
    items_sold,
    gross_revenue,
    net_revenue,
    {{ safe_divide('gross_revenue', 'orders') }} as average_order_value
from daily
