-- Per order: what was captured and refunded, and the latest payment's method and status.
with payments as (
    select
        *,
        row_number() over (
            partition by order_id order by coalesce(paid_at, created_at) desc, payment_id desc
        ) as recency
    from {{ ref('stg_shop__payments') }}
)

select
    order_id,
    count(*) as payments,
    sum(case when payment_status = 'captured' then amount else 0 end) as captured_amount,
    sum(case when payment_status = 'refunded' then amount else 0 end) as refunded_amount,
    max(case when recency = 1 then payment_method end) as payment_method,
    max(case when recency = 1 then payment_status end) as payment_status,
    max(paid_at) as last_paid_at
from payments
group by order_id
