{#-
  The run window of the daily-partitioned (incremental) marts.

  vars: min_date (inclusive) and max_date (exclusive), YYYY-MM-DD, as passed by Dagster for a
  partition (range); lookback_days (default 2) moves the start back so that late-arriving rows of
  the previous days are rebuilt too. Effective window: [min_date - lookback_days, max_date).
  Without vars the window is unbounded: every day is rebuilt.

  Each incremental mart filters its rows with `in_window(<date column>)` and deletes the same days
  from itself before inserting (`replace_window(<date column>)` as pre-hook, append strategy): a
  run replaces exactly the days of its window, so re-running a partition is idempotent and rows
  that disappeared upstream (deleted orders) disappear from the mart too. The order and campaign
  marts use `in_window_or_restated` / `replace_window(<column>, restated=true)`: they also rebuild
  the earlier days whose data changed inside the window (`int_restated_dates`: late status
  changes, refunds, edits and deletes of old orders, restated ad spend), however old those days are.
  Clickstream marts rely on the lookback (landing files arrive within a day or two).
-#}

{% macro _parse_date_var(name) -%}
  {%- set raw = var(name, none) -%}
  {%- if raw is none or (raw | string | trim) in ('', 'none', 'None', 'null') -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set text = raw | string | trim -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
    {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a date YYYY-MM-DD, got '" ~ text ~ "'") }}
  {%- endif -%}
  {%- set parsed = modules.datetime.datetime.strptime(text, '%Y-%m-%d').date() -%}
  {{ return(parsed) }}
{%- endmacro %}

{#- {'start': 'YYYY-MM-DD' or none, 'end': 'YYYY-MM-DD' or none} -#}
{% macro run_window() -%}
  {%- set min_date = _parse_date_var('min_date') -%}
  {%- set max_date = _parse_date_var('max_date') -%}
  {%- set lookback = var('lookback_days', 2) | int -%}
  {%- if lookback < 0 -%}
    {{ exceptions.raise_compiler_error("var 'lookback_days' must be >= 0, got " ~ lookback) }}
  {%- endif -%}
  {%- if min_date is not none and max_date is not none and min_date >= max_date -%}
    {{ exceptions.raise_compiler_error("min_date (" ~ min_date ~ ") must be before max_date (" ~ max_date ~ "): max_date is exclusive") }}
  {%- endif -%}
  {%- set start = none if min_date is none else (min_date - modules.datetime.timedelta(days=lookback)).isoformat() -%}
  {%- set end = none if max_date is none else max_date.isoformat() -%}
  {{ return({'start': start, 'end': end}) }}
{%- endmacro %}

{#- Predicate: `column` inside the run window; `end_slack_days` widens the end (for inputs of rows
    that start inside the window but continue past its end, e.g. sessions across midnight). -#}
{% macro in_window(column, start_slack_days=0, end_slack_days=0) -%}
  {%- set window = run_window() -%}
  {%- set conditions = [] -%}
  {%- if window.start is not none -%}
    {%- set start = modules.datetime.date.fromisoformat(window.start) - modules.datetime.timedelta(days=start_slack_days) -%}
    {%- do conditions.append(column ~ ' >= ' ~ date_literal(start.isoformat())) -%}
  {%- endif -%}
  {%- if window.end is not none -%}
    {%- set end = modules.datetime.date.fromisoformat(window.end) + modules.datetime.timedelta(days=end_slack_days) -%}
    {%- do conditions.append(column ~ ' < ' ~ date_literal(end.isoformat())) -%}
  {%- endif -%}
  {%- if conditions -%}({{ conditions | join(' and ') }}){%- else -%}(1 = 1){%- endif -%}
{%- endmacro %}

{#- Predicate: `column` inside the run window, or one of the earlier days restated by it. -#}
{% macro in_window_or_restated(column) -%}
  ({{ in_window(column) }} or {{ column }} in (select restated_date from {{ ref('int_restated_dates') }}))
{%- endmacro %}

{#- Pre-hook of the incremental marts: delete the days the run rebuilds before the new rows are
    appended; `restated=true` for the marts that select with `in_window_or_restated`. -#}
{% macro replace_window(column, restated=false) -%}
  {%- if execute and is_incremental() -%}
    delete from {{ this }} where {{ in_window_or_restated(column) if restated else in_window(column) }}
  {%- endif -%}
{%- endmacro %}
