-- Current stock per product and warehouse (a snapshot of silver inventory, rebuilt every run).
with inventory as (
    select * from {{ ref('stg_shop__inventory') }}
),

products as (
    select product_id, sku, product_name, category, cost from {{ ref('stg_shop__products') }}
)

select
    inventory.product_id,
    inventory.warehouse,
    products.sku,
    products.product_name,
    products.category,
    inventory.quantity_on_hand,
    inventory.reorder_level,
    inventory.quantity_on_hand <= inventory.reorder_level as needs_reorder,
    cast(inventory.quantity_on_hand * products.cost as decimal(12, 2)) as stock_value_at_cost,
    inventory.updated_at
from inventory
left join products on inventory.product_id = products.product_id
