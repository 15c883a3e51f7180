CREATE TABLE authors (
  id INTEGER PRIMARY KEY,
  name VARCHAR(120) NOT NULL
);

CREATE TABLE recipes (
  id INTEGER PRIMARY KEY,
  author_id INTEGER NOT NULL REFERENCES authors(id),
  title VARCHAR(160) NOT NULL,
  summary TEXT,
  cuisine VARCHAR(40),
  meal_type VARCHAR(20),
  prep_minutes INTEGER NOT NULL,
  cook_minutes INTEGER NOT NULL,
  servings INTEGER NOT NULL DEFAULT 4,
  difficulty VARCHAR(10) NOT NULL DEFAULT 'easy',
  calories_per_serving INTEGER,
  published_at TIMESTAMP
);

CREATE TABLE ingredients (
  id INTEGER PRIMARY KEY,
  name VARCHAR(80) NOT NULL UNIQUE
);

CREATE TABLE recipe_ingredients (
  recipe_id INTEGER NOT NULL REFERENCES recipes(id),
  ingredient_id INTEGER NOT NULL REFERENCES ingredients(id),
  quantity DECIMAL(8, 2),
  unit VARCHAR(12),
  preparation VARCHAR(40),
  PRIMARY KEY (recipe_id, ingredient_id)
);

CREATE TABLE recipe_steps (
  recipe_id INTEGER NOT NULL REFERENCES recipes(id),
  step_number INTEGER NOT NULL,
  instruction TEXT NOT NULL,
  PRIMARY KEY (recipe_id, step_number)
);

CREATE TABLE ratings (
  id INTEGER PRIMARY KEY,
  recipe_id INTEGER NOT NULL REFERENCES recipes(id),
  user_id INTEGER NOT NULL,
  stars INTEGER NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE (recipe_id, user_id)
);
