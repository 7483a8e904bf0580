-- Demo tables for the compose stack (deploy/compose.yaml), run once when the PostgreSQL volume is
-- created. The sluice user is the image's POSTGRES_USER: a superuser, so it may create the
-- replication slot and the publication itself (create_slot / create_publication default to true).
CREATE TABLE public.customers (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email      text NOT NULL UNIQUE,
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.orders (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES public.customers (id),
  total       numeric(12, 2) NOT NULL,
  status      text NOT NULL DEFAULT 'new',
  updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO public.customers (email, name) VALUES
  ('ada@example.com', 'Ada'),
  ('grace@example.com', 'Grace');
INSERT INTO public.orders (customer_id, total) VALUES (1, 12.50), (2, 99.00);
