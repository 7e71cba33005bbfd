{{ config(meta={'dagster': {'ref': {'name': 'fct_orders'}}}) }}

-- order_total is the sum of the order's line totals (PostgreSQL invariant, carried through CDC).
-- Orders whose lines have not reached the lake yet (item_lines = 0) are not judged.
with lines as (
    select order_id, sum(line_total) as line_totals
    from {{ ref('fct_order_items') }}
    group by order_id
)

select
    orders.order_id,
    orders.order_total,
    lines.line_totals
from {{ ref('fct_orders') }} as orders
inner join lines on orders.order_id = lines.order_id
where abs(orders.order_total - lines.line_totals) >= 0.005
