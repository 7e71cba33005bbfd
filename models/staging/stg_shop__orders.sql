with source as (
    select * from {{ source('shop', 'orders') }}
    where not _cdc_deleted
),

typed as (
    select
        cast(order_id as bigint) as order_id,
        cast(customer_id as bigint) as customer_id,
        cast(shipping_address_id as bigint) as shipping_address_id,
        cast(status as varchar) as order_status,
        upper(trim(cast(currency as varchar))) as currency,
        {{ to_decimal('order_total', 12, 2) }} as order_total,
        nullif(cast(campaign_id as varchar), '') as campaign_id,
        {{ iso_to_timestamp('ordered_at') }} as ordered_at,
        {{ iso_to_timestamp('created_at') }} as created_at,
        {{ iso_to_timestamp('updated_at') }} as updated_at,
        cast(_cdc_lsn as bigint) as cdc_lsn
    from source
)

select
    order_id,
    customer_id,
    shipping_address_id,
    order_status,
    currency,
    order_total,
    campaign_id,
    ordered_at,
    {{ utc_date('ordered_at') }} as order_date,
    created_at,
    updated_at,
    cdc_lsn
from typed
