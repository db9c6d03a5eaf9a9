//! A rotation call run again while another runner holds the credential's record.

use crate::error::Result;

/// Runs a rotation call again while another instance or this handle's own upkeep holds the
/// credential's record (every step is recorded, so a retry resumes where the other left it).
pub(crate) async fn retry_busy<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = token_rotate::Result<T>>,
{
    let mut wait = std::time::Duration::from_millis(1);
    for _ in 0..20 {
        match call().await {
            Err(token_rotate::RotateError::Busy(_)) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
    Ok(call().await?)
}
