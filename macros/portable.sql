{#-
  Portable SQL: one call site in the models, one implementation per adapter where DuckDB and
  Athena (Trino) differ. Dispatched with adapter.dispatch; `default__` is the DuckDB-compatible form.
  Conventions: every timestamp in the models is a naive `timestamp` holding UTC; dates are UTC dates.
-#}

{#- ISO-8601 text with offset ('2026-11-23T10:15:00.123456Z', Debezium's timestamptz) -> UTC timestamp. -#}
{% macro iso_to_timestamp(column) -%}
  {{ return(adapter.dispatch('iso_to_timestamp', 'ecommerce_lakehouse')(column)) }}
{%- endmacro %}

{% macro default__iso_to_timestamp(column) -%}
  timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{% macro athena__iso_to_timestamp(column) -%}
  {#- _nanos keeps the microseconds (from_iso8601_timestamp truncates to milliseconds) -#}
  cast(from_iso8601_timestamp_nanos({{ column }}) at time zone 'UTC' as timestamp(6))
{%- endmacro %}


{#- A timestamp column (dlt writes timestamp(us, UTC)) -> UTC timestamp without zone. -#}
{% macro to_utc_timestamp(column) -%}
  {{ return(adapter.dispatch('to_utc_timestamp', 'ecommerce_lakehouse')(column)) }}
{%- endmacro %}

{% macro default__to_utc_timestamp(column) -%}
  timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{% macro athena__to_utc_timestamp(column) -%}
  {#- Delta timestamps are instants; Athena shows them as UTC timestamps (with or without zone) -#}
  cast({{ column }} as timestamp(6))
{%- endmacro %}



{#- dlt's `_dlt_load_id` (the load's start as Unix seconds in text, '1772000000.123456') -> UTC
    timestamp: when the lake received the row (a merge rewrites it on every upsert of the row). -#}
{% macro dlt_load_time(column) -%}
  {{ return(adapter.dispatch('dlt_load_time', 'ecommerce_lakehouse')(column)) }}
{%- endmacro %}

{% macro default__dlt_load_time(column) -%}
  timezone('UTC', to_timestamp(cast({{ column }} as double)))
{%- endmacro %}

{% macro athena__dlt_load_time(column) -%}
  cast(from_unixtime(cast({{ column }} as double)) at time zone 'UTC' as timestamp(6))
{%- endmacro %}

{#- Array of JSON objects (text) -> one row per element: `json_array_rows(relation, key columns,
    json column, {field: sql type})` selects the keys, `position` (1-based) and the fields. -#}
{% macro json_array_rows(relation, keys, json_column, fields) -%}
  {{ return(adapter.dispatch('json_array_rows', 'ecommerce_lakehouse')(relation, keys, json_column, fields)) }}
{%- endmacro %}

{% macro default__json_array_rows(relation, keys, json_column, fields) -%}
  select
      {% for key in keys %}{{ key }}, {% endfor %}
      position,
      {% for name in fields %}element.{{ name }} as {{ name }}{{ ", " if not loop.last }}{% endfor %}
  from (
      select
          {% for key in keys %}{{ key }}, {% endfor %}
          unnest(elements) as element,
          generate_subscripts(elements, 1) as position
      from (
          select
              {% for key in keys %}{{ key }}, {% endfor %}
              from_json({{ json_column }}, '[{{ '{' }}{% for name, type in fields.items() %}"{{ name }}": "{{ type | upper }}"{{ ", " if not loop.last }}{% endfor %}{{ '}' }}]') as elements
          from {{ relation }}
      ) as parsed
  ) as exploded
{%- endmacro %}

{% macro athena__json_array_rows(relation, keys, json_column, fields) -%}
  select
      {% for key in keys %}source.{{ key }}, {% endfor %}
      elements.position,
      {% for name in fields %}elements.{{ name }}{{ ", " if not loop.last }}{% endfor %}
  from {{ relation }} as source
  cross join unnest(
      cast(json_parse({{ json_column }}) as array(row({% for name, type in fields.items() %}{{ name }} {{ type }}{{ ", " if not loop.last }}{% endfor %})))
  ) with ordinality as elements ({% for name in fields %}{{ name }}, {% endfor %}position)
{%- endmacro %}



{#- One row per element of an array column: `list_rows(relation, key columns, array column,
    alias)` selects the keys and the element as `alias`; no row for an empty or null array. -#}
{% macro list_rows(relation, keys, list_column, alias) -%}
  {{ return(adapter.dispatch('list_rows', 'ecommerce_lakehouse')(relation, keys, list_column, alias)) }}
{%- endmacro %}

{% macro default__list_rows(relation, keys, list_column, alias) -%}
  select
      {% for key in keys %}{{ key }}, {% endfor %}
      unnest({{ list_column }}) as {{ alias }}
  from {{ relation }}
{%- endmacro %}

{% macro athena__list_rows(relation, keys, list_column, alias) -%}
  select
      {% for key in keys %}source.{{ key }}, {% endfor %}
      items.{{ alias }}
  from {{ relation }} as source
  cross join unnest(source.{{ list_column }}) as items ({{ alias }})
{%- endmacro %}


{#- A date `days` days later (earlier when negative). -#}
{% macro add_days(date_expr, days) -%}
  {{ return(adapter.dispatch('add_days', 'ecommerce_lakehouse')(date_expr, days)) }}
{%- endmacro %}

{% macro default__add_days(date_expr, days) -%}
  cast({{ date_expr }} + to_days(cast({{ days }} as integer)) as date)
{%- endmacro %}

{% macro athena__add_days(date_expr, days) -%}
  date_add('day', {{ days }}, {{ date_expr }})
{%- endmacro %}

{#- UTC calendar date of a UTC timestamp. -#}
{% macro utc_date(timestamp_expr) -%}
  {{ return(adapter.dispatch('utc_date', 'ecommerce_lakehouse')(timestamp_expr)) }}
{%- endmacro %}

{% macro default__utc_date(timestamp_expr) -%}
  cast({{ timestamp_expr }} as date)
{%- endmacro %}


{#- A date column (or YYYY-MM-DD text) -> date; a plain cast keeps partition pruning. -#}
{% macro to_date(column) -%}
  {{ return(adapter.dispatch('to_date', 'ecommerce_lakehouse')(column)) }}
{%- endmacro %}

{% macro default__to_date(column) -%}
  cast({{ column }} as date)
{%- endmacro %}


{#- Decimal string (Debezium numeric) -> exact decimal. -#}
{% macro to_decimal(column, precision=12, scale=2) -%}
  {{ return(adapter.dispatch('to_decimal', 'ecommerce_lakehouse')(column, precision, scale)) }}
{%- endmacro %}

{% macro default__to_decimal(column, precision, scale) -%}
  cast({{ column }} as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}


{#- Scalar at a JSON path of JSON text, as text (null when missing). -#}
{% macro json_text(column, path) -%}
  {{ return(adapter.dispatch('json_text', 'ecommerce_lakehouse')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
  json_extract_string({{ column }}, '{{ path }}')
{%- endmacro %}

{% macro athena__json_text(column, path) -%}
  json_extract_scalar({{ column }}, '{{ path }}')
{%- endmacro %}


{#- Whole seconds from one timestamp to another. -#}
{% macro seconds_between(start_expr, end_expr) -%}
  {{ return(adapter.dispatch('seconds_between', 'ecommerce_lakehouse')(start_expr, end_expr)) }}
{%- endmacro %}

{% macro default__seconds_between(start_expr, end_expr) -%}
  date_diff('second', {{ start_expr }}, {{ end_expr }})
{%- endmacro %}


{#- Division as double, null when the denominator is 0 or null (Trino would divide integers). -#}
{% macro safe_divide(numerator, denominator) -%}
  {{ return(adapter.dispatch('safe_divide', 'ecommerce_lakehouse')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_divide(numerator, denominator) -%}
  (cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0))
{%- endmacro %}


{#- A date literal both engines accept. -#}
{% macro date_literal(value) -%}
  date '{{ value }}'
{%- endmacro %}



{#- Join condition: the rate row `rates` (int_currency_rates) that applies to an amount in
    `currency_expr` on day `date_expr`. -#}
{% macro rate_applies(rates, currency_expr, date_expr) -%}
  {{ rates }}.currency = {{ currency_expr }}
  and {{ date_expr }} >= {{ rates }}.valid_from
  and ({{ rates }}.valid_to is null or {{ date_expr }} < {{ rates }}.valid_to)
{%- endmacro %}


{#- An amount converted with a rate, to the cent (half away from zero on both engines). -#}
{% macro to_usd(amount, rate) -%}
  cast(round(({{ amount }}) * ({{ rate }}), 2) as decimal(12, 2))
{%- endmacro %}



{#- One row per day from `first_column` to `last_column` (inclusive) of each row of `relation`
    (a one-row CTE of bounds), as `alias`; no row when a bound is null or first > last. -#}
{% macro date_spine(relation, first_column, last_column, alias) -%}
  {{ return(adapter.dispatch('date_spine', 'ecommerce_lakehouse')(relation, first_column, last_column, alias)) }}
{%- endmacro %}

{% macro default__date_spine(relation, first_column, last_column, alias) -%}
  select cast(unnest(generate_series({{ first_column }}, {{ last_column }}, interval 1 day)) as date) as {{ alias }}
  from {{ relation }}
  where {{ first_column }} <= {{ last_column }}
{%- endmacro %}

{% macro athena__date_spine(relation, first_column, last_column, alias) -%}
  select spine.{{ alias }}
  from {{ relation }}
  cross join unnest(sequence({{ first_column }}, {{ last_column }}, interval '1' day)) as spine ({{ alias }})
  where {{ first_column }} <= {{ last_column }}
{%- endmacro %}
