CREATE TABLE clients (
  id INTEGER PRIMARY KEY,
  name VARCHAR(160) NOT NULL,
  contact_name VARCHAR(120),
  billing_email VARCHAR(255) NOT NULL,
  address TEXT NOT NULL,
  vat_number VARCHAR(30)
);

CREATE TABLE invoices (
  id INTEGER PRIMARY KEY,
  number VARCHAR(20) NOT NULL UNIQUE,
  client_id INTEGER NOT NULL REFERENCES clients(id),
  project_name VARCHAR(120),
  po_number VARCHAR(30),
  currency CHAR(3) NOT NULL DEFAULT 'CHF',
  issued_on DATE NOT NULL,
  due_on DATE NOT NULL,
  status VARCHAR(12) NOT NULL DEFAULT 'draft',
  subtotal DECIMAL(12, 2) NOT NULL,
  tax_total DECIMAL(12, 2) NOT NULL,
  total DECIMAL(12, 2) NOT NULL
);

CREATE TABLE invoice_lines (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices(id),
  description VARCHAR(300) NOT NULL,
  quantity DECIMAL(10, 2) NOT NULL,
  unit VARCHAR(12) NOT NULL DEFAULT 'hours',
  rate DECIMAL(10, 2) NOT NULL,
  vat_rate DECIMAL(4, 2) NOT NULL,
  amount DECIMAL(12, 2) NOT NULL
);

CREATE TABLE payments (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices(id),
  amount DECIMAL(12, 2) NOT NULL,
  paid_on DATE NOT NULL,
  method VARCHAR(20) NOT NULL DEFAULT 'bank_transfer'
);
