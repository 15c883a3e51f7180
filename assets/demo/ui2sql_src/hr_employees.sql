CREATE TABLE departments (
  id INTEGER PRIMARY KEY,
  name VARCHAR(80) NOT NULL UNIQUE
);

CREATE TABLE locations (
  id INTEGER PRIMARY KEY,
  city VARCHAR(80) NOT NULL UNIQUE,
  country_code CHAR(2)
);

CREATE TABLE employees (
  id INTEGER PRIMARY KEY,
  employee_number VARCHAR(10) NOT NULL UNIQUE,
  full_name VARCHAR(120) NOT NULL,
  job_title VARCHAR(120) NOT NULL,
  department_id INTEGER NOT NULL REFERENCES departments(id),
  manager_id INTEGER REFERENCES employees(id),
  location_id INTEGER REFERENCES locations(id),
  employment_type VARCHAR(16) NOT NULL DEFAULT 'full_time',
  start_date DATE NOT NULL,
  end_date DATE
);

CREATE TABLE time_off_requests (
  id INTEGER PRIMARY KEY,
  employee_id INTEGER NOT NULL REFERENCES employees(id),
  kind VARCHAR(16) NOT NULL,
  start_date DATE NOT NULL,
  end_date DATE NOT NULL,
  days DECIMAL(4, 1) NOT NULL,
  status VARCHAR(12) NOT NULL DEFAULT 'pending',
  approved_by INTEGER REFERENCES employees(id)
);
