CREATE TABLE agencies (
  id INTEGER PRIMARY KEY,
  name VARCHAR(120) NOT NULL UNIQUE
);

CREATE TABLE agents (
  id INTEGER PRIMARY KEY,
  agency_id INTEGER NOT NULL REFERENCES agencies(id),
  full_name VARCHAR(120) NOT NULL,
  phone VARCHAR(32),
  email VARCHAR(255) UNIQUE
);

CREATE TABLE listings (
  id INTEGER PRIMARY KEY,
  agent_id INTEGER NOT NULL REFERENCES agents(id),
  street_address VARCHAR(200) NOT NULL,
  city VARCHAR(80) NOT NULL,
  state CHAR(2) NOT NULL,
  zip_code VARCHAR(10) NOT NULL,
  property_type VARCHAR(20) NOT NULL,
  price DECIMAL(12, 2) NOT NULL,
  bedrooms INTEGER NOT NULL,
  bathrooms DECIMAL(3, 1) NOT NULL,
  living_area_sqft INTEGER,
  lot_size_sqft INTEGER,
  year_built INTEGER,
  listed_on DATE NOT NULL,
  status VARCHAR(12) NOT NULL DEFAULT 'active'
);

CREATE TABLE open_houses (
  id INTEGER PRIMARY KEY,
  listing_id INTEGER NOT NULL REFERENCES listings(id),
  starts_at TIMESTAMP NOT NULL,
  ends_at TIMESTAMP NOT NULL
);

CREATE TABLE viewing_requests (
  id INTEGER PRIMARY KEY,
  listing_id INTEGER NOT NULL REFERENCES listings(id),
  email VARCHAR(255) NOT NULL,
  requested_at TIMESTAMP NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
