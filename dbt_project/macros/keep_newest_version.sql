{#
    Keeps one row per key: the newest version as the source contract defines it
    (../../shared/source_contract.md, "Keys and versions"): order by the entity's version
    columns descending (nulls last), then the newer extract (_extract_ts), then the later
    physical line (_line), then the file name so that ties are broken deterministically.

    Renders a complete final `select` over the CTE `relation`, returning exactly its columns.
#}
{% macro keep_newest_version(relation, key_columns, version_columns=[]) -%}
    {{ return(adapter.dispatch('keep_newest_version', 'segments')(relation, key_columns, version_columns)) }}
{%- endmacro %}


{% macro newest_version_window(key_columns, version_columns) -%}
    partition by {{ key_columns | join(', ') }}
    order by
        {%- for column in version_columns %}
        {{ column }} desc nulls last,
        {%- endfor %}
        _extract_ts desc nulls last,
        _line desc,
        _source_file desc
{%- endmacro %}


{# Portable: rank, then join back on the raw row's identity (_source_file, _line is unique in raw). #}
{% macro default__keep_newest_version(relation, key_columns, version_columns) -%}
select versions.*
from {{ relation }} as versions
inner join (
    select _source_file, _line
    from (
        select
            _source_file,
            _line,
            row_number() over (
                {{ segments.newest_version_window(key_columns, version_columns) }}
            ) as version_rank
        from {{ relation }}
    ) as ranked
    where version_rank = 1
) as newest
    on versions._source_file = newest._source_file
    and versions._line = newest._line
{%- endmacro %}


{#
    DuckDB: most keys have a single version (a delta extract repeats few keys), so only the keys
    that occur more than once are ranked; sorting every row with its payload in a window costs
    more than two extra scans of the key. Keys are compared through hash(): a hash collision only
    sends a few single-version keys through the ranking as well (complete keys either way), and
    null keys hash like any other value, so the rows kept are exactly those of the one-pass
    `qualify row_number() ... = 1`. The repeated hashes are found by sorting the hashes and
    comparing neighbours: at 20M nearly unique keys that is half the CPU of a hash aggregate,
    whose table of 20M groups does not fit in cache (stg_erp__order_lines 13.3 -> 11.6 CPU-s).
    Models whose `relation` is a plain projection mark it (and what it reads) with
    segments.not_materialized(): DuckDB would otherwise copy a CTE that is read three times,
    and three column scans are cheaper than a copy of 20M rows.
#}
{% macro duckdb__keep_newest_version(relation, key_columns, version_columns) -%}
{%- set key_hash = 'hash(' ~ key_columns | join(', ') ~ ')' -%}
select * from (
    with multi_version_keys as (
        select distinct key_hash
        from (select {{ key_hash }} as key_hash from {{ relation }})
        qualify lead(key_hash) over (order by key_hash) = key_hash
    )

    select *
    from {{ relation }}
    where {{ key_hash }} not in (select key_hash from multi_version_keys)

    union all

    select *
    from {{ relation }}
    where {{ key_hash }} in (select key_hash from multi_version_keys)
    qualify row_number() over (
        {{ segments.newest_version_window(key_columns, version_columns) }}
    ) = 1
)
{%- endmacro %}


{#
    `with x as {{ segments.not_materialized() }} (...)`: a CTE that DuckDB should inline at every
    use instead of materialising it (a column scan is cheaper than a copy of 20M rows).
#}
{% macro not_materialized() -%}
    {{ return(adapter.dispatch('not_materialized', 'segments')()) }}
{%- endmacro %}

{% macro default__not_materialized() -%}{%- endmacro %}

{% macro duckdb__not_materialized() -%}not materialized{%- endmacro %}
