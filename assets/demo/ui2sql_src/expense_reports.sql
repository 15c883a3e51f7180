CREATE TABLE employees (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  department VARCHAR(60) NOT NULL,
  manager_id INTEGER REFERENCES employees(id)
);

CREATE TABLE expense_categories (
  id INTEGER PRIMARY KEY,
  name VARCHAR(40) NOT NULL UNIQUE,
  per_item_limit DECIMAL(10, 2)
);

CREATE TABLE expense_reports (
  id INTEGER PRIMARY KEY,
  code VARCHAR(10) NOT NULL UNIQUE,
  title VARCHAR(120) NOT NULL,
  employee_id INTEGER NOT NULL REFERENCES employees(id),
  approver_id INTEGER REFERENCES employees(id),
  cost_centre VARCHAR(10) NOT NULL,
  project VARCHAR(80),
  period_start DATE NOT NULL,
  period_end DATE NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'draft',
  comment TEXT,
  submitted_at TIMESTAMP,
  decided_at TIMESTAMP
);

CREATE TABLE expense_items (
  id INTEGER PRIMARY KEY,
  report_id INTEGER NOT NULL REFERENCES expense_reports(id),
  category_id INTEGER NOT NULL REFERENCES expense_categories(id),
  spent_on DATE NOT NULL,
  merchant VARCHAR(120) NOT NULL,
  payment_source VARCHAR(20) NOT NULL,
  card_last4 CHAR(4),
  amount DECIMAL(10, 2) NOT NULL,
  vat_amount DECIMAL(10, 2) NOT NULL DEFAULT 0,
  receipt_file VARCHAR(255),
  policy_flag VARCHAR(40)
);
