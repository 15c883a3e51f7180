CREATE TABLE warehouses (
  id INTEGER PRIMARY KEY,
  name VARCHAR(80) NOT NULL UNIQUE,
  city VARCHAR(80) NOT NULL
);

CREATE TABLE suppliers (
  id INTEGER PRIMARY KEY,
  name VARCHAR(160) NOT NULL UNIQUE,
  contact_email VARCHAR(255),
  lead_time_days INTEGER NOT NULL DEFAULT 7
);

CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  sku VARCHAR(20) NOT NULL UNIQUE,
  name VARCHAR(200) NOT NULL,
  supplier_id INTEGER REFERENCES suppliers(id),
  unit_cost DECIMAL(10, 2) NOT NULL,
  barcode VARCHAR(32) UNIQUE
);

CREATE TABLE stock_levels (
  warehouse_id INTEGER NOT NULL REFERENCES warehouses(id),
  item_id INTEGER NOT NULL REFERENCES items(id),
  bin_location VARCHAR(12),
  on_hand INTEGER NOT NULL DEFAULT 0,
  reserved INTEGER NOT NULL DEFAULT 0,
  reorder_point INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (warehouse_id, item_id)
);

CREATE TABLE stock_movements (
  id BIGINT PRIMARY KEY,
  warehouse_id INTEGER NOT NULL REFERENCES warehouses(id),
  item_id INTEGER NOT NULL REFERENCES items(id),
  quantity INTEGER NOT NULL,
  reason VARCHAR(20) NOT NULL,
  moved_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
