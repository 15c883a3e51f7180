CREATE TABLE companies (
  id INTEGER PRIMARY KEY,
  name VARCHAR(160) NOT NULL UNIQUE,
  industry VARCHAR(80),
  website VARCHAR(255)
);

CREATE TABLE contacts (
  id INTEGER PRIMARY KEY,
  company_id INTEGER REFERENCES companies(id),
  full_name VARCHAR(120) NOT NULL,
  email VARCHAR(255) UNIQUE,
  phone VARCHAR(32)
);

CREATE TABLE pipeline_stages (
  id INTEGER PRIMARY KEY,
  name VARCHAR(40) NOT NULL UNIQUE,
  position INTEGER NOT NULL,
  default_probability INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE deals (
  id INTEGER PRIMARY KEY,
  title VARCHAR(160) NOT NULL,
  company_id INTEGER NOT NULL REFERENCES companies(id),
  contact_id INTEGER REFERENCES contacts(id),
  stage_id INTEGER NOT NULL REFERENCES pipeline_stages(id),
  owner_name VARCHAR(120) NOT NULL,
  amount DECIMAL(12, 2) NOT NULL,
  probability INTEGER,
  expected_close_date DATE,
  closed_at DATE
);

CREATE TABLE activities (
  id INTEGER PRIMARY KEY,
  deal_id INTEGER NOT NULL REFERENCES deals(id),
  contact_id INTEGER REFERENCES contacts(id),
  kind VARCHAR(16) NOT NULL,
  subject VARCHAR(200) NOT NULL,
  due_at TIMESTAMP NOT NULL,
  done BOOLEAN NOT NULL DEFAULT FALSE
);
