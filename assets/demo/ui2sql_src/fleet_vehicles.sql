CREATE TABLE drivers (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  license_number VARCHAR(20) NOT NULL UNIQUE,
  phone VARCHAR(32)
);

CREATE TABLE vehicles (
  id INTEGER PRIMARY KEY,
  plate VARCHAR(12) NOT NULL UNIQUE,
  vin CHAR(17) NOT NULL UNIQUE,
  make VARCHAR(40) NOT NULL,
  model VARCHAR(60) NOT NULL,
  model_year INTEGER NOT NULL,
  fuel_type VARCHAR(12) NOT NULL,
  odometer_km INTEGER NOT NULL DEFAULT 0,
  current_driver_id INTEGER REFERENCES drivers(id),
  status VARCHAR(12) NOT NULL DEFAULT 'idle'
);

CREATE TABLE trips (
  id INTEGER PRIMARY KEY,
  vehicle_id INTEGER NOT NULL REFERENCES vehicles(id),
  driver_id INTEGER NOT NULL REFERENCES drivers(id),
  origin VARCHAR(120) NOT NULL,
  destination VARCHAR(120) NOT NULL,
  distance_km DECIMAL(8, 1),
  stops INTEGER NOT NULL DEFAULT 0,
  started_at TIMESTAMP NOT NULL,
  ended_at TIMESTAMP
);

CREATE TABLE maintenance_records (
  id INTEGER PRIMARY KEY,
  vehicle_id INTEGER NOT NULL REFERENCES vehicles(id),
  service_type VARCHAR(60) NOT NULL,
  scheduled_on DATE NOT NULL,
  completed_on DATE,
  odometer_km INTEGER,
  cost DECIMAL(10, 2)
);
