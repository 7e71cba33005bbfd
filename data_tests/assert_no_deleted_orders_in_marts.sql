{{ config(meta={'dagster': {'ref': {'name': 'fct_orders'}}}) }}

-- Orders deleted in PostgreSQL (silver tombstones, _cdc_deleted) never reach the marts.
select orders.order_id
from {{ ref('fct_orders') }} as orders
inner join {{ source('shop', 'orders') }} as silver
    on orders.order_id = cast(silver.order_id as bigint)
where silver._cdc_deleted
