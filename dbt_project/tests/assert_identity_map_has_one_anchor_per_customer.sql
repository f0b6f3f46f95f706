-- customer_id is derived from one anchor source record (DESIGN.md, "Identifiers"): every
-- unified customer in the identity map has exactly one.
select
    customer_id,
    sum(case when is_anchor then 1 else 0 end) as anchors
from {{ ref('stg_identity__customer_source_map') }}
group by customer_id
having sum(case when is_anchor then 1 else 0 end) <> 1
