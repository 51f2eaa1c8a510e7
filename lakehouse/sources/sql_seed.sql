-- The SPECS seed's trade and option tables, as the `sql` source reads them (lakehouse/sources/sql.py).
--
-- One row per print (stock_trades) and per option quote snapshot (options_data). `id` is a
-- bigserial assigned at insert: the source reads `id > watermark` in id order, so rows must be
-- inserted by one writer (or in commit order) for the watermark never to skip a row. Timestamps
-- are timestamptz (microseconds); numeric prices are read as float8.
--
-- Mapping to bronze:
--   stock_trades  -> bronze.trades        symbol -> symbol_id "<SYM>:US" (or the params' mapping),
--                                         size -> float, side 'buy'/'sell' -> +1/-1, id -> seq
--   options_data  -> bronze.options_chain underlying -> "<SYM>:US", option_type 'call'/'put' -> C/P,
--                                         implied_volatility -> iv
-- A row with a null price, a negative size or an unknown symbol is quarantined with its JSON.

CREATE TABLE IF NOT EXISTS stock_trades (
    id          bigserial PRIMARY KEY,
    symbol      text        NOT NULL,
    ts          timestamptz NOT NULL,
    price       numeric(18, 6),
    size        integer,
    exchange    text,
    conditions  text,
    side        text CHECK (side IN ('buy', 'sell'))
);
CREATE INDEX IF NOT EXISTS stock_trades_symbol_ts ON stock_trades (symbol, ts);

CREATE TABLE IF NOT EXISTS options_data (
    id                  bigserial PRIMARY KEY,
    underlying          text        NOT NULL,
    ts                  timestamptz NOT NULL,
    expiry              date        NOT NULL,
    strike              numeric(18, 6) NOT NULL,
    option_type         text        NOT NULL CHECK (option_type IN ('call', 'put')),
    bid                 numeric(18, 6),
    ask                 numeric(18, 6),
    last                numeric(18, 6),
    volume              bigint,
    open_interest       bigint,
    implied_volatility  double precision,
    delta               double precision,
    gamma               double precision,
    vega                double precision,
    theta               double precision,
    rho                 double precision
);
CREATE INDEX IF NOT EXISTS options_data_underlying_ts ON options_data (underlying, ts);
