//! Market paths: one closing price per security and one FX rate per currency for each business
//! day, generated from a scenario and a seed or loaded from CSV files of real history.
//!
//! **Model.** Each of the eight risk factors (six securities, two FX rates) follows a geometric
//! Brownian motion with correlated daily shocks: `ln S(t+1) = ln S(t) + (mu - sigma^2 / 2) dt +
//! sigma sqrt(dt) Z`, `dt = 1/250`, `Z = L e` where `L` is the Cholesky factor of the scenario's
//! correlation matrix and `e` independent standard normals (Box-Muller over SplitMix64). On a jump
//! day (probability `jump_intensity dt`) every equity also moves by `exp(J)`, `J ~ N(jump_mean,
//! jump_sd)`. Prices are rounded half-up to the security's quoted decimals (bonds 3, per 100
//! face; equities 1 or 2; FX 3), so the ledger receives exact decimals.

use kessai_types::{AssetClass, AssetId, BusinessDate, Currency, Decimal, repo::is_business_date};
use std::{collections::BTreeMap, path::Path, str::FromStr};

/// Business days in a year of the model (`dt = 1 / YEAR_DAYS`).
pub const YEAR_DAYS: f64 = 250.0;

/// A security of the universe: its quotation and, for generated paths, its dynamics.
#[derive(Clone, Debug)]
pub struct Security {
    pub id: AssetId,
    pub class: AssetClass,
    /// Decimals of its closing price.
    pub scale: u8,
}

impl Security {
    pub fn currency(&self) -> Currency {
        match self.class {
            AssetClass::Bond { currency } | AssetClass::Equity { currency } => currency,
            AssetClass::Cash { currency, .. } => currency,
            _ => unreachable!("the universe holds bonds and equities"),
        }
    }

    pub fn is_equity(&self) -> bool {
        matches!(self.class, AssetClass::Equity { .. })
    }
}

/// One business day's closing values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub date: BusinessDate,
    /// By security, in the universe's order.
    pub prices: Vec<Decimal>,
    /// Units of the valuation currency per unit of each foreign currency, in order.
    pub rates: Vec<Decimal>,
}

/// The universe and its closing values, day 0 first.
#[derive(Clone, Debug)]
pub struct Market {
    pub securities: Vec<Security>,
    /// Every value is computed in this currency; it needs no FX rate.
    pub valuation: Currency,
    /// The other currencies, each quoted against `valuation`.
    pub currencies: Vec<Currency>,
    pub days: Vec<Close>,
}

/// A named market regime and its parameters (annualized).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    pub equity_drift: f64,
    pub bond_drift: f64,
    /// Drift of each FX rate (positive: the valuation currency weakens).
    pub fx_drift: f64,
    /// Every volatility is multiplied by this.
    pub volatility_factor: f64,
    /// Correlations move this share of the way towards 1 (assets move together in a crisis).
    pub correlation_stress: f64,
    /// Expected equity jump days per year.
    pub jump_intensity: f64,
    pub jump_mean: f64,
    pub jump_sd: f64,
}

pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "normal",
        equity_drift: 0.05,
        bond_drift: 0.0,
        fx_drift: 0.0,
        volatility_factor: 1.0,
        correlation_stress: 0.0,
        jump_intensity: 0.0,
        jump_mean: 0.0,
        jump_sd: 0.0,
    },
    Scenario {
        name: "sharp-rise",
        equity_drift: 0.60,
        bond_drift: 0.04,
        fx_drift: 0.10,
        volatility_factor: 1.5,
        correlation_stress: 0.3,
        jump_intensity: 4.0,
        jump_mean: 0.04,
        jump_sd: 0.02,
    },
    Scenario {
        name: "sharp-fall",
        equity_drift: -0.60,
        bond_drift: -0.06,
        fx_drift: -0.10,
        volatility_factor: 1.5,
        correlation_stress: 0.3,
        jump_intensity: 6.0,
        jump_mean: -0.05,
        jump_sd: 0.03,
    },
    Scenario {
        name: "high-volatility",
        equity_drift: 0.0,
        bond_drift: 0.0,
        fx_drift: 0.0,
        volatility_factor: 3.0,
        correlation_stress: 0.5,
        jump_intensity: 10.0,
        jump_mean: 0.0,
        jump_sd: 0.05,
    },
];

impl FromStr for Scenario {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        SCENARIOS
            .iter()
            .find(|scenario| scenario.name == name)
            .copied()
            .ok_or_else(|| {
                let names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
                format!("unknown scenario {name:?}; one of {}", names.join(", "))
            })
    }
}

/// The built-in universe (government bonds and listed equities of Japan, the US and Germany,
/// valued in JPY): id, class, currency, price decimals, day-0 price, annual volatility.
const UNIVERSE: [(&str, Kind, &str, u8, f64, f64); 6] = [
    ("JP-GOVT", Kind::Bond, "JPY", 3, 100.250, 0.02),
    ("US-GOVT", Kind::Bond, "USD", 3, 97.500, 0.06),
    ("DE-GOVT", Kind::Bond, "EUR", 3, 98.811, 0.05),
    ("JP-EQUITY", Kind::Equity, "JPY", 1, 2_700.0, 0.18),
    ("US-EQUITY", Kind::Equity, "USD", 2, 161.01, 0.20),
    ("DE-EQUITY", Kind::Equity, "EUR", 2, 180.00, 0.20),
];
/// FX rates against JPY: currency, day-0 rate, annual volatility (3 decimals).
const RATES: [(&str, f64, f64); 2] = [("USD", 150.0, 0.09), ("EUR", 162.0, 0.08)];
const RATE_SCALE: u8 = 3;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bond,
    Equity,
    Fx,
}

/// Correlation of two factors in normal markets.
fn base_correlation(a: Kind, b: Kind) -> f64 {
    match (a, b) {
        (Kind::Bond, Kind::Bond) => 0.5,
        (Kind::Equity, Kind::Equity) => 0.7,
        (Kind::Fx, Kind::Fx) => 0.6,
        (Kind::Bond, Kind::Equity) | (Kind::Equity, Kind::Bond) => -0.2,
        (Kind::Equity, Kind::Fx) | (Kind::Fx, Kind::Equity) => 0.3,
        (Kind::Bond, Kind::Fx) | (Kind::Fx, Kind::Bond) => 0.0,
    }
}

/// Lower-triangular `L` with `L L^T = matrix`; `None` if it is not positive definite.
fn cholesky(matrix: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = matrix.len();
    let mut lower = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| lower[i][k] * lower[j][k]).sum();
            if i == j {
                let diagonal = matrix[i][i] - sum;
                if diagonal <= 0.0 {
                    return None;
                }
                lower[i][i] = diagonal.sqrt();
            } else {
                lower[i][j] = (matrix[i][j] - sum) / lower[j][j];
            }
        }
    }
    Some(lower)
}

/// SplitMix64 and Box-Muller: a reproducible stream of uniforms and standard normals.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64, stream: u64) -> Self {
        Random(kessai_state::workload::mix(
            seed ^ kessai_state::workload::mix(stream),
        ))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        kessai_state::workload::mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Round half-up to `scale` decimals.
fn decimal(value: f64, scale: u8) -> Decimal {
    let mantissa = (value * 10f64.powi(scale as i32)).round().max(1.0);
    Decimal::new(mantissa as u128, scale).expect("scale within bounds")
}

const MS_PER_DAY: u64 = 86_400_000;

/// The business day `day` (0, 1, ...) from Monday 6 January 2025, skipping weekends.
pub fn weekday_date(day: usize) -> BusinessDate {
    // 6 January 2025 is day 20,094 since 1970-01-01, a Monday.
    let days = 20_094 + (day / 5) * 7 + day % 5;
    kessai_state::date_of(days as u64 * MS_PER_DAY)
}

impl Market {
    /// `days` business days after day 0 (so `days + 1` closes), from a scenario and a seed.
    pub fn generate(scenario: &Scenario, seed: u64, days: usize) -> Market {
        let kinds: Vec<Kind> = UNIVERSE
            .iter()
            .map(|entry| entry.1)
            .chain(RATES.iter().map(|_| Kind::Fx))
            .collect();
        let stress = scenario.correlation_stress;
        let correlation: Vec<Vec<f64>> = (0..kinds.len())
            .map(|i| {
                (0..kinds.len())
                    .map(|j| {
                        let base = base_correlation(kinds[i], kinds[j]);
                        match i == j {
                            true => 1.0,
                            false if base > 0.0 => base + stress * (1.0 - base),
                            false => base,
                        }
                    })
                    .collect()
            })
            .collect();
        let lower = cholesky(&correlation).expect("the scenarios' correlations are valid");
        let volatility: Vec<f64> = UNIVERSE
            .iter()
            .map(|entry| entry.5)
            .chain(RATES.iter().map(|rate| rate.2))
            .map(|sigma| sigma * scenario.volatility_factor)
            .collect();
        let drift: Vec<f64> = kinds
            .iter()
            .map(|kind| match kind {
                Kind::Bond => scenario.bond_drift,
                Kind::Equity => scenario.equity_drift,
                Kind::Fx => scenario.fx_drift,
            })
            .collect();
        let mut level: Vec<f64> = UNIVERSE
            .iter()
            .map(|entry| entry.4)
            .chain(RATES.iter().map(|rate| rate.1))
            .collect();
        let dt = 1.0 / YEAR_DAYS;
        let mut random = Random::new(seed, 0x4D41_524B_4554);
        let mut closes = Vec::with_capacity(days + 1);
        for day in 0..=days {
            if day > 0 {
                let independent: Vec<f64> = kinds.iter().map(|_| random.normal()).collect();
                let jump = (random.uniform() < scenario.jump_intensity * dt)
                    .then(|| scenario.jump_mean + scenario.jump_sd * random.normal());
                for i in 0..kinds.len() {
                    let shock: f64 = (0..=i).map(|k| lower[i][k] * independent[k]).sum();
                    let sigma = volatility[i];
                    let mut step =
                        (drift[i] - sigma * sigma / 2.0) * dt + sigma * dt.sqrt() * shock;
                    if kinds[i] == Kind::Equity {
                        step += jump.unwrap_or(0.0);
                    }
                    level[i] *= step.exp();
                }
            }
            closes.push(Close {
                date: weekday_date(day),
                prices: UNIVERSE
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| decimal(level[i], entry.3))
                    .collect(),
                rates: (0..RATES.len())
                    .map(|r| decimal(level[UNIVERSE.len() + r], RATE_SCALE))
                    .collect(),
            });
        }
        Market {
            securities: UNIVERSE
                .iter()
                .map(|(id, kind, currency, scale, ..)| {
                    let currency = currency.parse().expect("a valid currency");
                    Security {
                        id: AssetId::new(id).expect("a valid code"),
                        class: match kind {
                            Kind::Bond => AssetClass::Bond { currency },
                            _ => AssetClass::Equity { currency },
                        },
                        scale: *scale,
                    }
                })
                .collect(),
            valuation: "JPY".parse().expect("a valid currency"),
            currencies: RATES
                .iter()
                .map(|rate| rate.0.parse().expect("a valid currency"))
                .collect(),
            days: closes,
        }
    }

    /// Real history: closing prices (`date,asset,class,currency,price`; class `bond` or
    /// `equity`) and FX rates (`date,base,quote,rate`, quote = the valuation currency), at most
    /// `days + 1` dates from the first. Every date must have every security's price and every
    /// foreign currency's rate.
    pub fn load(
        prices: &Path,
        rates: Option<&Path>,
        valuation: Currency,
        days: usize,
    ) -> Result<Market, LoadError> {
        let mut securities: Vec<Security> = Vec::new();
        let mut by_date: BTreeMap<BusinessDate, BTreeMap<AssetId, Decimal>> = BTreeMap::new();
        for (line, row) in rows(prices, 5)? {
            let error = |reason: String| LoadError::Row {
                file: prices.display().to_string(),
                line,
                reason,
            };
            let date = parse_date(&row[0]).map_err(error)?;
            let id = AssetId::new(&row[1]).map_err(|e| error(e.to_string()))?;
            let currency: Currency = row[3].parse().map_err(|e| error(format!("{e}")))?;
            let class = match row[2].as_str() {
                "bond" => AssetClass::Bond { currency },
                "equity" => AssetClass::Equity { currency },
                other => return Err(error(format!("class {other:?}: bond or equity"))),
            };
            let price: Decimal = row[4].parse().map_err(|e| error(format!("{e}")))?;
            if price.mantissa == 0 {
                return Err(error("a price must be positive".into()));
            }
            match securities.iter().find(|s| s.id == id) {
                Some(known) if known.class != class => {
                    return Err(error(format!("{id} changes class or currency")));
                }
                Some(_) => {}
                None => securities.push(Security {
                    id,
                    class,
                    scale: price.scale,
                }),
            }
            if by_date.entry(date).or_default().insert(id, price).is_some() {
                return Err(error(format!("a second price of {id} on {date}")));
            }
        }
        let mut currencies: Vec<Currency> = securities
            .iter()
            .map(Security::currency)
            .filter(|currency| *currency != valuation)
            .collect();
        currencies.sort();
        currencies.dedup();
        let mut rates_by_date: BTreeMap<BusinessDate, BTreeMap<Currency, Decimal>> =
            BTreeMap::new();
        if let Some(path) = rates {
            for (line, row) in rows(path, 4)? {
                let error = |reason: String| LoadError::Row {
                    file: path.display().to_string(),
                    line,
                    reason,
                };
                let date = parse_date(&row[0]).map_err(error)?;
                let base: Currency = row[1].parse().map_err(|e| error(format!("{e}")))?;
                let quote: Currency = row[2].parse().map_err(|e| error(format!("{e}")))?;
                if quote != valuation {
                    return Err(error(format!(
                        "quote {quote}: rates are quoted in {valuation}"
                    )));
                }
                let rate: Decimal = row[3].parse().map_err(|e| error(format!("{e}")))?;
                if rate.mantissa == 0 {
                    return Err(error("a rate must be positive".into()));
                }
                rates_by_date.entry(date).or_default().insert(base, rate);
            }
        }
        let mut closes = Vec::new();
        for (date, prices) in by_date.into_iter().take(days + 1) {
            let missing = |what: String| LoadError::Missing { date, what };
            let prices = securities
                .iter()
                .map(|s| {
                    prices
                        .get(&s.id)
                        .copied()
                        .ok_or_else(|| missing(s.id.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let on_date = rates_by_date.get(&date);
            let rates = currencies
                .iter()
                .map(|c| {
                    on_date
                        .and_then(|rates| rates.get(c))
                        .copied()
                        .ok_or_else(|| missing(format!("{c}/{valuation}")))
                })
                .collect::<Result<_, _>>()?;
            closes.push(Close {
                date,
                prices,
                rates,
            });
        }
        if closes.len() < 2 {
            return Err(LoadError::TooShort);
        }
        Ok(Market {
            securities,
            valuation,
            currencies,
            days: closes,
        })
    }

    /// What one unit of security `index` is worth on `day`, in the valuation currency
    /// (approximately: only for sizing contracts and drawing charts).
    pub fn unit_value(&self, index: usize, day: usize) -> f64 {
        let close = &self.days[day];
        let security = &self.securities[index];
        let price = to_f64(close.prices[index]);
        let per_unit = if security.is_equity() {
            price
        } else {
            price / 100.0
        };
        per_unit * self.rate(security.currency(), day)
    }

    /// Valuation-currency units per unit of `currency` on `day` (approximately).
    pub fn rate(&self, currency: Currency, day: usize) -> f64 {
        match self.currencies.iter().position(|c| *c == currency) {
            Some(index) => to_f64(self.days[day].rates[index]),
            None => 1.0,
        }
    }
}

pub fn to_f64(value: Decimal) -> f64 {
    value.mantissa as f64 / 10f64.powi(value.scale as i32)
}

/// Why a CSV history could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {file}: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}, line {line}: {reason}")]
    Row {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("no {what} on {date}: every date needs every security's price and every FX rate")]
    Missing { date: BusinessDate, what: String },
    #[error("a history needs at least two dates")]
    TooShort,
}

/// The data rows of a CSV file with a header row, each with exactly `columns` fields.
fn rows(path: &Path, columns: usize) -> Result<Vec<(u64, Vec<String>)>, LoadError> {
    let read = |reason: String| LoadError::Read {
        file: path.display().to_string(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| read(e.to_string()))?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| read(e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != columns {
            return Err(LoadError::Row {
                file: path.display().to_string(),
                line,
                reason: format!("{} fields, expected {columns}", record.len()),
            });
        }
        rows.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(rows)
}

/// `YYYYMMDD` or `YYYY-MM-DD`, from 1970-01-01 on (the ledger's clock is Unix time).
fn parse_date(text: &str) -> Result<BusinessDate, String> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    let date = digits
        .parse::<BusinessDate>()
        .ok()
        .filter(|date| digits.len() == 8 && is_business_date(*date))
        .ok_or_else(|| format!("date {text:?}: YYYY-MM-DD or YYYYMMDD"))?;
    if date < 19700101 {
        return Err(format!(
            "date {text:?}: before 1970-01-01, where the ledger's clock (Unix time) starts"
        ));
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_valid_correlation_matrix_and_positive_prices() {
        for scenario in &SCENARIOS {
            let market = Market::generate(scenario, 7, 250);
            assert_eq!(market.days.len(), 251);
            for close in &market.days {
                assert!(
                    close
                        .prices
                        .iter()
                        .chain(&close.rates)
                        .all(|p| p.mantissa > 0)
                );
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_path_and_another_seed_another() {
        let scenario: Scenario = "high-volatility".parse().unwrap();
        let a = Market::generate(&scenario, 1, 50).days;
        assert_eq!(a, Market::generate(&scenario, 1, 50).days);
        assert_ne!(a, Market::generate(&scenario, 2, 50).days);
    }

    #[test]
    fn scenarios_drift_the_way_their_names_say() {
        let mean_equity = |name: &str| {
            let scenario: Scenario = name.parse().unwrap();
            let runs = 40;
            (0..runs)
                .map(|seed| {
                    let market = Market::generate(&scenario, seed, 125);
                    market.unit_value(4, 125) / market.unit_value(4, 0)
                })
                .sum::<f64>()
                / runs as f64
        };
        assert!(mean_equity("sharp-rise") > 1.2);
        assert!(mean_equity("sharp-fall") < 0.8);
        assert!((0.9..1.15).contains(&mean_equity("normal")));
    }

    #[test]
    fn history_dates_parse_in_both_forms_from_1970_on() {
        assert_eq!(parse_date("2023-04-19"), Ok(20230419));
        assert_eq!(parse_date("19700101"), Ok(19700101));
        for bad in ["2023-02-30", "2023-4-19", "20230419x", ""] {
            assert!(parse_date(bad).unwrap_err().contains("YYYY-MM-DD"), "{bad}");
        }
        assert!(
            parse_date("1969-12-31")
                .unwrap_err()
                .contains("before 1970-01-01")
        );
    }

    #[test]
    fn business_days_skip_weekends() {
        assert_eq!(weekday_date(0), 20250106);
        assert_eq!(weekday_date(4), 20250110);
        assert_eq!(weekday_date(5), 20250113);
        assert_eq!(weekday_date(19), 20250131);
        assert_eq!(weekday_date(20), 20250203);
    }

    #[test]
    fn a_history_missing_a_price_is_refused_with_its_date() {
        let dir = std::env::temp_dir().join(format!("kessai-sim-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prices = dir.join("prices.csv");
        std::fs::write(
            &prices,
            "date,asset,class,currency,price\n2024-01-04,A,bond,JPY,100.1\n2024-01-04,B,equity,JPY,50\n2024-01-05,A,bond,JPY,100.2\n",
        )
        .unwrap();
        let error = Market::load(&prices, None, "JPY".parse().unwrap(), 10).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no B on 20240105: every date needs every security's price and every FX rate"
        );
        std::fs::write(
            &prices,
            "date,asset,class,currency,price\n2024-01-04,A,cash,JPY,1\n",
        )
        .unwrap();
        let error = Market::load(&prices, None, "JPY".parse().unwrap(), 10).unwrap_err();
        assert!(
            error.to_string().contains("line 2: class \"cash\""),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
