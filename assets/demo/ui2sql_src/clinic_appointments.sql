CREATE TABLE clinicians (
  id INTEGER PRIMARY KEY,
  full_name VARCHAR(120) NOT NULL,
  specialty VARCHAR(80)
);

CREATE TABLE patients (
  id INTEGER PRIMARY KEY,
  mrn VARCHAR(12) NOT NULL UNIQUE,
  full_name VARCHAR(120) NOT NULL,
  date_of_birth DATE NOT NULL,
  sex CHAR(1),
  insurer VARCHAR(80),
  policy_number VARCHAR(40),
  allergies TEXT
);

CREATE TABLE appointments (
  id INTEGER PRIMARY KEY,
  patient_id INTEGER NOT NULL REFERENCES patients(id),
  clinician_id INTEGER NOT NULL REFERENCES clinicians(id),
  starts_at TIMESTAMP NOT NULL,
  duration_min INTEGER NOT NULL DEFAULT 15,
  visit_type VARCHAR(30) NOT NULL,
  room VARCHAR(8),
  reason TEXT,
  status VARCHAR(16) NOT NULL DEFAULT 'booked'
);

CREATE TABLE prescriptions (
  id INTEGER PRIMARY KEY,
  patient_id INTEGER NOT NULL REFERENCES patients(id),
  prescribed_by INTEGER NOT NULL REFERENCES clinicians(id),
  appointment_id INTEGER REFERENCES appointments(id),
  drug_name VARCHAR(120) NOT NULL,
  dosage VARCHAR(60) NOT NULL,
  frequency VARCHAR(40),
  active BOOLEAN NOT NULL DEFAULT TRUE,
  start_date DATE NOT NULL
);
