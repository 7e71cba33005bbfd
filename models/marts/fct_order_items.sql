{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['order_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('order_date', restated=['orders']) }}",
        tags=['daily']
    )
}}

-- One row per order line, by the UTC order date of its order (lines of orders not in fct_orders yet
-- are left out until their order arrives).
with orders as (
    select * from {{ ref('fct_orders') }}
    where {{ in_window_or_restated('order_date', ['orders']) }}
),

items as (
    select * from {{ ref('stg_shop__order_items') }}
),

products as (
    select product_id, cost from {{ ref('stg_shop__products') }}
)

select
    items.order_item_id,
    items.order_id,
    orders.order_date,
    orders.ordered_at,
    orders.customer_id,
    items.product_id,
    orders.order_status,
    orders.counts_as_revenue,
    items.quantity,
    items.unit_price,
    items.discount,
    items.line_total,
    products.cost as unit_cost,
    cast(items.line_total - items.quantity * products.cost as decimal(12, 2)) as line_margin
from items
inner join orders on items.order_id = orders.order_id
left join products on items.product_id = products.product_id
