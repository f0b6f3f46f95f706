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


{# DuckDB has QUALIFY: one pass, no self-join. #}
{% macro duckdb__keep_newest_version(relation, key_columns, version_columns) -%}
select *
from {{ relation }}
qualify row_number() over (
    {{ segments.newest_version_window(key_columns, version_columns) }}
) = 1
{%- endmacro %}
