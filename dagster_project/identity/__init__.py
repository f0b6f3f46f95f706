"""Who is the customer: linking CRM accounts and ERP customers into one customer_id each."""
