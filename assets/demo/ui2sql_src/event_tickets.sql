CREATE TABLE venues (
  id INTEGER PRIMARY KEY,
  name VARCHAR(120) NOT NULL,
  address VARCHAR(200) NOT NULL,
  city VARCHAR(80) NOT NULL,
  capacity INTEGER NOT NULL
);

CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  venue_id INTEGER NOT NULL REFERENCES venues(id),
  title VARCHAR(200) NOT NULL,
  organiser VARCHAR(120) NOT NULL,
  genre VARCHAR(40),
  doors_at TIMESTAMP NOT NULL,
  starts_at TIMESTAMP NOT NULL,
  min_age INTEGER,
  description TEXT
);

CREATE TABLE ticket_types (
  id INTEGER PRIMARY KEY,
  event_id INTEGER NOT NULL REFERENCES events(id),
  name VARCHAR(80) NOT NULL,
  price DECIMAL(8, 2) NOT NULL,
  fee DECIMAL(8, 2) NOT NULL DEFAULT 0,
  quantity_total INTEGER NOT NULL,
  quantity_sold INTEGER NOT NULL DEFAULT 0,
  max_per_order INTEGER NOT NULL DEFAULT 8,
  UNIQUE (event_id, name)
);

CREATE TABLE promo_codes (
  id INTEGER PRIMARY KEY,
  event_id INTEGER NOT NULL REFERENCES events(id),
  code VARCHAR(20) NOT NULL UNIQUE,
  percent_off INTEGER NOT NULL
);

CREATE TABLE ticket_orders (
  id INTEGER PRIMARY KEY,
  buyer_email VARCHAR(255) NOT NULL,
  promo_code_id INTEGER REFERENCES promo_codes(id),
  total DECIMAL(10, 2) NOT NULL,
  status VARCHAR(12) NOT NULL DEFAULT 'held',
  held_until TIMESTAMP,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE tickets (
  id INTEGER PRIMARY KEY,
  order_id INTEGER NOT NULL REFERENCES ticket_orders(id),
  ticket_type_id INTEGER NOT NULL REFERENCES ticket_types(id),
  seat_label VARCHAR(12),
  barcode VARCHAR(32) NOT NULL UNIQUE
);
