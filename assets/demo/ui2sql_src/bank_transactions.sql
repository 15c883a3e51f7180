CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE accounts (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  name VARCHAR(60) NOT NULL,
  sort_code CHAR(8) NOT NULL,
  account_number CHAR(8) NOT NULL,
  currency CHAR(3) NOT NULL DEFAULT 'GBP',
  balance DECIMAL(14, 2) NOT NULL DEFAULT 0,
  UNIQUE (sort_code, account_number)
);

CREATE TABLE cards (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  last4 CHAR(4) NOT NULL,
  expires_on DATE NOT NULL,
  frozen BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE categories (
  id INTEGER PRIMARY KEY,
  name VARCHAR(40) NOT NULL UNIQUE
);

CREATE TABLE transactions (
  id BIGINT PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  card_id INTEGER REFERENCES cards(id),
  category_id INTEGER REFERENCES categories(id),
  booked_on DATE NOT NULL,
  description VARCHAR(140) NOT NULL,
  reference VARCHAR(140),
  payment_type VARCHAR(20) NOT NULL,
  amount DECIMAL(14, 2) NOT NULL,
  balance_after DECIMAL(14, 2) NOT NULL
);
