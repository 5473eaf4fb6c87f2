-- The tables examples/users-purchases reads and writes, with a few sample rows. `npm run demo` runs it;
-- to try the example against your own Postgres (wal_level=logical), run the shop section in the shop
-- database and the crm section in the crm database (not the whole file in one), as the README does:
--   sed -n '/^-- section: shop/,/^-- section: crm/p' examples/users-purchases/schema.sql | psql "$SHOP_URL" -v ON_ERROR_STOP=1
--   sed -n '/^-- section: crm/,$p' examples/users-purchases/schema.sql | psql "$CRM_URL" -v ON_ERROR_STOP=1
-- The sections are separated by the marker lines below; the demo runs each in its database.

-- section: shop
CREATE TABLE users (
  id int PRIMARY KEY,
  email text,
  first_name text,
  created_at timestamptz DEFAULT now(),
  marketing_opt_in boolean
);
CREATE TABLE purchases (
  id serial PRIMARY KEY,
  user_id int NOT NULL,
  amount numeric(10,2),
  state text,
  created_at timestamptz DEFAULT now()
);
INSERT INTO users (id, email, first_name, marketing_opt_in) VALUES
  (1, 'ada@example.com', 'Ada', true), (2, 'grace@example.com', 'Grace', false), (3, 'alan@example.org', 'Alan', true);
INSERT INTO purchases (user_id, amount, state, created_at) VALUES
  (1, 80, 'successful', now() - interval '2 days'), (1, 40, 'successful', now() - interval '40 days'),
  (2, 15, 'successful', now() - interval '1 day'), (3, 200, 'refunded', now() - interval '5 days');

-- section: crm
-- The destination crm_contacts upserts by id; the user's groups go by name into segments.
CREATE TABLE contacts (
  id int PRIMARY KEY,
  email text,
  first_name text,
  lifetime_value numeric,
  last_purchase_at timestamptz,
  segments text[] NOT NULL DEFAULT '{}'
);
