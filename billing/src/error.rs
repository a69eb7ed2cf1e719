use ynni_core::CatalogError;
use ynni_core::catalog::LedgerRefusal;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Ledger(#[from] LedgerRefusal),
    #[error("no such user")]
    UnknownUser,
    #[error("no such plan: {0}")]
    UnknownPlan(String),
    /// Unknown and already used codes answer alike, so the answer does not tell which codes
    /// exist.
    #[error("this voucher code is not valid (unknown, or already used)")]
    VoucherNotValid,
    #[error("voucher codes are at least 10 characters")]
    VoucherTooShort,
    #[error("amount must be a whole number of pence above zero")]
    BadAmount,
    /// `refundable`: the balance, but no more than the cash the account paid in (less its
    /// refunds): voucher credit is spent, never paid out.
    #[error(
        "a refund of {asked}p is more than the {refundable}p that can be refunded (the balance, at most the cash paid in)"
    )]
    RefundTooLarge { asked: i64, refundable: i64 },
    #[error("no transaction with key {0}")]
    UnknownTransaction(String),
    #[error("{0} cannot be reversed")]
    NotReversible(String),
    #[error("{0} was already used for another account")]
    KeyUsed(String),
    #[error("references and codes are 1 to 100 letters, digits, '-', '_' or '.'")]
    BadReference,
    #[error("bad date or month: {0}")]
    BadDate(String),
}

impl BillingError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            BillingError::Catalog(e) if e.is_retryable() => 503,
            BillingError::Catalog(_) => 500,
            BillingError::UnknownUser
            | BillingError::UnknownTransaction(_)
            | BillingError::VoucherNotValid => 404,
            BillingError::KeyUsed(_) => 409,
            _ => 400,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BillingError::Catalog(e) if e.is_retryable())
    }
}
