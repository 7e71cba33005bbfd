-- Per product: stock over all warehouses.
select
    product_id,
    sum(quantity_on_hand) as units_on_hand,
    count(*) as warehouses_stocked,
    count(case when quantity_on_hand <= reorder_level then warehouse end) as warehouses_below_reorder
from {{ ref('stg_shop__inventory') }}
group by product_id
