CREATE TABLE room_types (
  id INTEGER PRIMARY KEY,
  name VARCHAR(40) NOT NULL UNIQUE,
  bed_type VARCHAR(20) NOT NULL,
  max_occupancy INTEGER NOT NULL
);

CREATE TABLE rooms (
  id INTEGER PRIMARY KEY,
  number VARCHAR(6) NOT NULL UNIQUE,
  floor INTEGER NOT NULL,
  room_type_id INTEGER NOT NULL REFERENCES room_types(id),
  view VARCHAR(20),
  housekeeping_status VARCHAR(12) NOT NULL DEFAULT 'clean',
  out_of_order_reason VARCHAR(120)
);

CREATE TABLE guests (
  id INTEGER PRIMARY KEY,
  first_name VARCHAR(80) NOT NULL,
  last_name VARCHAR(80) NOT NULL,
  email VARCHAR(255),
  phone VARCHAR(32)
);

CREATE TABLE rate_plans (
  id INTEGER PRIMARY KEY,
  name VARCHAR(60) NOT NULL UNIQUE,
  includes_breakfast BOOLEAN NOT NULL DEFAULT FALSE,
  refundable BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE reservations (
  id INTEGER PRIMARY KEY,
  code VARCHAR(12) NOT NULL UNIQUE,
  guest_id INTEGER NOT NULL REFERENCES guests(id),
  room_id INTEGER REFERENCES rooms(id),
  rate_plan_id INTEGER NOT NULL REFERENCES rate_plans(id),
  check_in DATE NOT NULL,
  check_out DATE NOT NULL,
  adults INTEGER NOT NULL DEFAULT 1,
  children INTEGER NOT NULL DEFAULT 0,
  nightly_rate DECIMAL(8, 2) NOT NULL,
  channel VARCHAR(30) NOT NULL DEFAULT 'direct',
  deposit_paid DECIMAL(10, 2) NOT NULL DEFAULT 0,
  status VARCHAR(12) NOT NULL DEFAULT 'confirmed'
);
