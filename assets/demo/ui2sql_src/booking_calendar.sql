CREATE TABLE rooms (
  id INTEGER PRIMARY KEY,
  name VARCHAR(60) NOT NULL UNIQUE,
  floor INTEGER NOT NULL,
  capacity INTEGER NOT NULL,
  has_screen BOOLEAN NOT NULL DEFAULT FALSE,
  has_conference_phone BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE employees (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  email VARCHAR(255) NOT NULL UNIQUE
);

CREATE TABLE bookings (
  id INTEGER PRIMARY KEY,
  room_id INTEGER NOT NULL REFERENCES rooms(id),
  organizer_id INTEGER NOT NULL REFERENCES employees(id),
  title VARCHAR(160) NOT NULL,
  starts_at TIMESTAMP NOT NULL,
  ends_at TIMESTAMP NOT NULL,
  external_guests INTEGER NOT NULL DEFAULT 0,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE booking_attendees (
  booking_id INTEGER NOT NULL REFERENCES bookings(id),
  employee_id INTEGER NOT NULL REFERENCES employees(id),
  response VARCHAR(12) NOT NULL DEFAULT 'pending',
  PRIMARY KEY (booking_id, employee_id)
);
