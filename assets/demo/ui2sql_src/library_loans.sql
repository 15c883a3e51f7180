CREATE TABLE members (
  id INTEGER PRIMARY KEY,
  card_number VARCHAR(16) NOT NULL UNIQUE,
  full_name VARCHAR(120) NOT NULL,
  email VARCHAR(255),
  member_type VARCHAR(12) NOT NULL DEFAULT 'adult',
  max_items INTEGER NOT NULL DEFAULT 12,
  fines_owed DECIMAL(6, 2) NOT NULL DEFAULT 0,
  joined_on DATE NOT NULL
);

CREATE TABLE titles (
  id INTEGER PRIMARY KEY,
  title VARCHAR(300) NOT NULL,
  author VARCHAR(200),
  format VARCHAR(12) NOT NULL DEFAULT 'book',
  call_number VARCHAR(30),
  isbn VARCHAR(13) UNIQUE
);

CREATE TABLE copies (
  id INTEGER PRIMARY KEY,
  title_id INTEGER NOT NULL REFERENCES titles(id),
  barcode VARCHAR(14) NOT NULL UNIQUE,
  branch VARCHAR(60) NOT NULL
);

CREATE TABLE loans (
  id INTEGER PRIMARY KEY,
  copy_id INTEGER NOT NULL REFERENCES copies(id),
  member_id INTEGER NOT NULL REFERENCES members(id),
  checked_out_on DATE NOT NULL,
  due_on DATE NOT NULL,
  returned_on DATE,
  renewals INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE holds (
  id INTEGER PRIMARY KEY,
  title_id INTEGER NOT NULL REFERENCES titles(id),
  member_id INTEGER NOT NULL REFERENCES members(id),
  placed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  queue_position INTEGER,
  ready_until DATE
);
