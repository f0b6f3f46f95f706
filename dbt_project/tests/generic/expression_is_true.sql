{#
    Fails for every row where the boolean SQL `expression` is false (rows where it is null
    pass, so that a missing input is tested separately with not_null).
#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
