-- Revenue and counts of a day can never be negative, and net revenue never exceeds gross revenue.
select *
from {{ ref('fct_daily_revenue') }}
where gross_revenue < 0
    or net_revenue < 0
    or net_revenue > gross_revenue
    or orders < 0
    or items_sold < 0
