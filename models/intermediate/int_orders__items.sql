-- Per order: its lines summed up.
select
    order_id,
    count(*) as item_lines,
    sum(quantity) as units,
    sum(line_total) as items_subtotal,
    sum(discount) as discount_total
from {{ ref('stg_shop__order_items') }}
group by order_id
