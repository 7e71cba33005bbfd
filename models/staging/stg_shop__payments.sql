with source as (
    select * from {{ source('shop', 'payments') }}
    where not _cdc_deleted
)

select
    cast(payment_id as bigint) as payment_id,
    cast(order_id as bigint) as order_id,
    cast(method as varchar) as payment_method,
    cast(status as varchar) as payment_status,
    {{ to_decimal('amount', 12, 2) }} as amount,
    {{ iso_to_timestamp('paid_at') }} as paid_at,
    {{ iso_to_timestamp('created_at') }} as created_at,
    {{ iso_to_timestamp('updated_at') }} as updated_at,
    cast(_cdc_lsn as bigint) as cdc_lsn
from source
