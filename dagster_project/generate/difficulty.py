"""Every difficulty setting of the demo generator, in one place.

The numbers here decide how hard the generated data is to clean, match and segment: noise and
typo rates, label drift, duplicates, missing or wrong links, picklist quality, currency mix,
malformed rows, and how strongly behaviour reveals the true service tier. They are fixed on
purpose: identity matching and segmentation are tuned against data generated with these values,
so change them only together with the tests and thresholds that depend on them.

Per-tier tuples are ordered (High-touch, Medium-touch, Low-touch).
"""

from __future__ import annotations

from dataclasses import dataclass

Tier3 = tuple[float, float, float]


@dataclass(frozen=True)
class Difficulty:
    """Noise, drift and signal strength of the generated CRM and ERP extracts."""

    # --- volume -----------------------------------------------------------------------------
    order_lines_per_company_year: float = 40.0
    """Mean ERP order lines per company (all companies, buyers or not) and year: 200 over 5 years."""

    # --- which system knows a company ---------------------------------------------------------
    erp_only_share: float = 0.10
    """Share of direct buyers (customers, distributors, EPCs) that exist only in ERP."""
    end_user_in_erp_share: float = 0.55
    """Share of end users that have an ERP customer record (as ship-to/end user, few own orders)."""
    end_user_erp_only_share: float = 0.15
    """Share of end users that exist only in ERP."""
    end_user_direct_buyer_share: float = 0.35
    """Share of end users with an ERP record that also buy spare parts directly."""
    competitor_in_erp_share: float = 0.30
    """Share of competitors that also buy (spare parts) and so have an ERP record."""
    partner_in_erp_share: float = 0.50
    """Share of partners with an ERP record and some orders."""
    buyer_volume_by_role: tuple[tuple[str, float], ...] = (
        ("customer", 1.0), ("distributor", 2.2), ("epc", 1.4), ("end_user", 0.25),
        ("partner", 0.3), ("competitor", 0.2), ("prospect", 0.0),
    )
    """Order volume multiplier per role (distributors buy most, prospects never)."""

    # --- firmographics and groups --------------------------------------------------------------
    service_tier_by_size: tuple[tuple[str, Tier3], ...] = (
        ("strategic", (0.60, 0.30, 0.10)), ("key", (0.45, 0.40, 0.15)),
        ("large", (0.30, 0.45, 0.25)), ("medium", (0.15, 0.45, 0.40)),
        ("small", (0.06, 0.34, 0.60)),
    )
    """P(service tier | size tier): bigger customers tend to be served high-touch (size leaks tier)."""
    group_member_share: float = 0.12
    """Share of companies that belong to a group (their parent is another generated company)."""
    subsidiary_shares_brand_rate: float = 0.6
    """Share of group members whose name reuses the parent's brand (similar names, different companies)."""
    employees_noise_sigma: float = 0.6
    """Log-normal spread of employees around the size tier's typical head count."""
    new_company_share: float = 0.22
    """Share of companies created during the history window (the rest are legacy accounts)."""
    churn_share: float = 0.14
    """Share of buyers that stop ordering during the window."""
    profile_migration_rate: float = 0.06
    """Share of companies whose business model or operating environment changes during the window."""
    project_profile_deviation_rate: float = 0.12
    """Share of projects (opportunities) whose true value profile differs from the customer's."""

    # --- names, addresses, VAT -------------------------------------------------------------------
    crm_drop_legal_form_rate: float = 0.30
    """CRM account names typed without the legal form."""
    crm_full_legal_form_rate: float = 0.04
    """CRM account names with the legal form written out in full (Aktiengesellschaft)."""
    crm_typo_rate: float = 0.05
    """CRM account names with one typo (swapped, dropped or doubled letter)."""
    crm_ascii_umlaut_rate: float = 0.12
    """CRM names typed with umlauts spelled out (Mueller for Müller)."""
    crm_upper_case_rate: float = 0.04
    """CRM names typed in capitals."""
    crm_extra_space_rate: float = 0.03
    """CRM names with a doubled or trailing space."""
    erp_upper_case_rate: float = 0.75
    """ERP names stored in upper case."""
    erp_transliterate_rate: float = 0.85
    """ERP names and addresses with non-ASCII letters transliterated (Ä->AE, ß->SS)."""
    erp_name_length: int = 35
    """ERP name1 length; the rest of a longer name goes to name2."""
    crm_vat_missing_rate: float = 0.30
    """CRM accounts without a VAT id."""
    crm_vat_spaced_rate: float = 0.15
    """CRM VAT ids typed with spaces (FI 1234 5678)."""
    crm_vat_dashed_rate: float = 0.08
    """CRM VAT ids typed with a dash after the country prefix (FI-12345678)."""
    crm_vat_no_prefix_rate: float = 0.06
    """CRM VAT ids typed without the country prefix."""
    erp_vat_missing_rate: float = 0.20
    """ERP customers without a VAT number (more outside the EU is realistic but kept flat)."""
    erp_vat_no_prefix_rate: float = 0.05
    """ERP VAT numbers without the country prefix."""
    crm_street_missing_rate: float = 0.10
    """CRM accounts without a billing street."""
    crm_postal_missing_rate: float = 0.06
    """CRM accounts without a postal code."""
    city_exonym_rate: float = 0.35
    """CRM cities written in English or another language where such a name exists (Munich)."""
    erp_street_abbreviation_rate: float = 0.8
    """ERP streets abbreviated (STRASSE -> STR.)."""
    crm_country_name_rate: float = 0.6
    """Legacy CRM rows (created before iso_country_since_year) holding a country name, not ISO."""
    iso_country_since_year: int = 2019
    """From this creation year on, CRM stores ISO alpha-2 country codes."""
    website_missing_rate: float = 0.25
    """CRM accounts without a website."""

    # --- duplicates and links ----------------------------------------------------------------------
    crm_duplicate_rate: float = 0.05
    """CRM companies with a re-created second account (name variant, fewer fields)."""
    crm_duplicate_deleted_rate: float = 0.35
    """Share of CRM duplicates where one of the two accounts is soft-deleted."""
    merged_company_rate: float = 0.015
    """Companies that absorbed another company: the absorbed company's old records (other name,
    same address) remain in CRM and ERP and belong to the surviving company."""
    erp_duplicate_rate: float = 0.04
    """ERP companies re-created under a new customer number (old one deletion-flagged)."""
    erp_sales_org_duplicate_rate: float = 0.02
    """ERP companies with a second customer number in an export sales org (both active)."""
    erp_link_fill_rate: float = 0.55
    """CRM accounts (of companies also in ERP) whose erp_customer_number is filled."""
    erp_link_stale_rate: float = 0.12
    """Filled links that point to another, wrong ERP customer (stale after clean-ups)."""
    erp_link_mistyped_rate: float = 0.06
    """Filled links that are mistyped (digits swapped or leading zeros dropped)."""
    erp_link_old_number_rate: float = 0.5
    """Where a company was re-created in ERP, share of links still pointing at the old number."""

    # --- legacy labels --------------------------------------------------------------------------------
    legacy_label_noise_rate: float = 0.12
    """Legacy labels that belong to a random other sub-segment (wrong but mapped)."""
    crm_industry_missing_rate: float = 0.10
    """CRM accounts without an industry label."""
    crm_legacy_segment_missing_rate: float = 0.15
    """CRM accounts without a legacy segment label."""
    erp_customer_group_missing_rate: float = 0.05
    """ERP customers without a customer group."""
    label_relabel_rate: float = 0.30
    """Accounts whose legacy labels were re-picked when last edited (drift: the era of the edit)."""

    # --- new picklists --------------------------------------------------------------------------------
    picklist_go_live_years_before_end: float = 2.0
    """When the new segmentation picklists went live (scheme version 1), in years before the end."""
    scheme_v2_years_before_end: float = 1.0
    """When scheme version 2 (the added sub-segment) went live, in years before the end."""
    picklist_fill_rate: float = 0.85
    """Accounts edited since go-live whose segment picklists are filled."""
    picklist_fill_rate_unedited: float = 0.02
    """Accounts not edited since go-live that carry picklists all the same (bulk loads)."""
    picklist_axes_fill_rate: float = 0.7
    """Of the filled accounts, share that also fill business_model / operating_environment / product_usage."""
    picklist_wrong_sub_segment_rate: float = 0.07
    """Filled picklists naming a wrong sub-segment (of the right segment)."""
    picklist_wrong_segment_rate: float = 0.03
    """Filled picklists naming a wrong segment (and so a wrong sub-segment)."""
    picklist_wrong_value_profile_rate: float = 0.22
    """Filled value_profile picklists naming a wrong profile (the error-prone field)."""
    picklist_wrong_axis_rate: float = 0.08
    """Filled business_model / operating_environment / product_usage values that are wrong."""

    # --- extracts and versions ------------------------------------------------------------------------
    incremental_update_rate: float = 0.04
    """Share of existing CRM accounts, contacts and ERP customers re-extracted with changes in
    each incremental extract."""
    last_modified_recency: float = 2.5
    """How strongly CRM last_modified leans towards the extract date (Beta(k, 1) of the account's life)."""

    # --- behaviour: the service-tier signal --------------------------------------------------------
    rush_share: Tier3 = (0.14, 0.06, 0.02)
    """Share of orders of type Rush, by service tier."""
    expedited_share: Tier3 = (0.12, 0.05, 0.02)
    """Share of orders of type Expedited, by service tier."""
    consignment_share_distributor: float = 0.15
    """Share of distributor orders of type Consignment."""
    change_orders_mean: Tier3 = (1.4, 0.6, 0.15)
    """Mean change orders after confirmation per order, by service tier."""
    order_irregularity: Tier3 = (0.15, 0.5, 0.95)
    """0 = orders evenly spaced over the active period, 1 = fully random (RFQ buying), by tier."""
    requested_lead_days: Tier3 = (18.0, 35.0, 60.0)
    """Median requested lead time (order to requested delivery) of standard orders, by tier."""
    payment_delay_days: Tier3 = (9.0, 4.0, 1.0)
    """Mean days paid after the due date, by tier (negative = early)."""
    ignores_terms_rate: float = 0.07
    """Customers that ignore agreed payment terms."""
    ignores_terms_extra_days: float = 30.0
    """Extra mean payment delay of customers that ignore terms."""
    cases_per_year: Tier3 = (5.0, 1.8, 0.5)
    """Service cases per year of a medium-sized buyer, by tier."""
    agreements_mean: Tier3 = (1.5, 0.6, 0.08)
    """Service agreements per buyer, by tier."""
    long_term_agreement_share: Tier3 = (0.8, 0.35, 0.05)
    """Share of agreements that are long-term (LTSA or O&M) rather than transactional, by tier."""
    rating_noise: float = 1.2
    """Gumbel noise on value-driver utilities before ranking (higher = rankings stray further
    from the project's value profile; the profile's drivers are 1 utility step apart)."""
    rated_share_won: float = 0.55
    """Share of won opportunities with a value-driver rating."""
    rated_share_lost: float = 0.35
    """Share of lost opportunities with a value-driver rating."""
    second_rater_share: float = 0.2
    """Share of rated opportunities rated by a second person too."""
    specialty_share: Tier3 = (0.65, 0.45, 0.25)
    """Share of order lines for Specialty (vs Commodity) materials, by tier."""
    service_attach_rate: Tier3 = (0.6, 0.3, 0.08)
    """Share of opportunities that include a service agreement, by tier."""
    csat_mean: Tier3 = (4.2, 3.9, 3.6)
    """Mean survey CSAT (1-5), by tier."""
    service_draining_share: Tier3 = (0.25, 0.06, 0.0)
    """Share of customers that are service-draining (many cases, low margin), by tier."""
    draining_extra_discount_pct: float = 9.0
    """Extra discount (percentage points) that service-draining customers get."""
    draining_case_multiplier: float = 2.0
    """Case-rate multiplier of service-draining customers."""
    product_mix_concentration: float = 6.0
    """Dirichlet concentration of a company's product mix around its sub-segment's (lower = noisier)."""

    # --- deliveries, returns, invoices --------------------------------------------------------------
    late_delivery_rate: float = 0.14
    """Share of delivery lines shipped after the planned date."""
    partial_delivery_rate: float = 0.06
    """Share of order lines delivered in two parts."""
    open_remainder_rate: float = 0.2
    """Of partial deliveries, share whose second part never ships (backorder)."""
    missing_delivery_rate: float = 0.004
    """Share of old order lines with no delivery at all."""
    return_order_rate: float = 0.02
    """Share of orders with a return (negative quantity) line and a credit note."""
    standalone_credit_note_rate: float = 0.006
    """Share of orders with a price-correction credit note; a third of these carry no order id."""
    line_cost_missing_rate: float = 0.08
    """Order lines without cost (the pipeline then uses the material's standard cost)."""
    orders_after_deletion_rate: float = 0.02
    """Orders of deleted or blocked ERP customers placed after the deletion or block."""
    order_block_rate: float = 0.03
    """ERP customers blocked for new orders."""
    end_user_on_distributor_order_rate: float = 0.7
    """Distributor/EPC orders that name the end user (end_user_customer_number)."""

    # --- currency ---------------------------------------------------------------------------------
    local_currency_share: float = 0.65
    """Buyers outside the euro area invoiced in their local currency (else EUR or USD)."""
    usd_share_of_foreign: float = 0.35
    """Of the other buyers outside the euro area, share invoiced in USD (else EUR)."""
    missing_fx_months: int = 1
    """Monthly fx rates left out (one currency misses this many months)."""

    # --- malformed rows (planted defects) ------------------------------------------------------------
    defect_rate: float = 0.0002
    """Malformed rows per data row in each CSV file (at least one per file of meaningful size)."""
    defect_min_rows: int = 20
    """A CSV file with at least this many rows gets at least one malformed row."""
    defect_max_per_file: int = 200
    """Cap on malformed rows per file."""
    defect_kind_weights: tuple[tuple[str, float], ...] = (
        ("unparseable_date", 0.3), ("text_in_numeric", 0.3), ("missing_required", 0.25),
        ("broken_quoting", 0.15),
    )
    """Relative frequency of the malformed-row kinds (where a file's columns allow the kind)."""
    truncated_files: int = 2
    """Number of CSV files whose last line is truncated (one full load, one incremental)."""
    bom_entities: tuple[str, ...] = ("crm/accounts", "erp/customers")
    """Entities whose full-load CSV starts with a UTF-8 byte-order mark."""
    reordered_entities: tuple[str, ...] = ("erp/customers", "crm/contacts")
    """Entities whose incremental CSVs list their columns in another order than the contract."""
    comment_missing_rate: float = 0.4
    """Surveys without a comment."""
    comment_newline_rate: float = 0.08
    """Survey comments with an embedded line break (good rows spanning physical lines)."""


DEFAULT = Difficulty()
