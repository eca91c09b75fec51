//! One OAuth access token for the whole process, minted with the client-credentials grant and
//! renewed before it expires.
//!
//! Single flight: the token sits behind one async mutex, and whoever finds it missing or due for
//! renewal mints while holding the lock; every other worker waits on the lock and then uses the
//! token just minted, so four workers never mint four tokens. A 401 invalidates a token only while
//! it is still the current one (by generation), so several workers refused at once cause a single
//! mint. A refusal by the token endpoint itself (wrong secret, scope not allowed) is remembered:
//! every later caller gets the same error without asking again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::auth::{bearer, Secret};
use super::error::{ApiError, TokenRefusal};

/// Renewal starts at most this long before a token expires: ample for one request to reach
/// Zendesk with it, and small next to the 300 s shortest lifetime Zendesk hands out.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// An access token as the token endpoint returned it.
pub struct Token {
    pub access_token: Secret,
    /// `expires_in`; `None`: the token does not expire.
    pub expires_in: Option<Duration>,
}

/// How long before expiry a token of `lifetime` is renewed: a fifth of its life, at most a
/// minute. A fixed minute would renew a 60-second token on every request; a fifth leaves the
/// other four fifths for use.
pub fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(MAX_MARGIN)
}

/// The process's token: the current one, when to renew it, and how many were minted.
#[derive(Default)]
pub struct TokenCache {
    state: Mutex<State>,
    minted: AtomicU64,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// Bumped with every mint; a 401 names the generation it was refused.
    generation: u64,
    /// The token endpoint refused the client for good: no further mint is tried.
    refused: Option<TokenRefusal>,
}

struct Current {
    header: HeaderValue,
    /// `None`: never renewed (the token does not expire).
    renew_at: Option<Instant>,
}

impl TokenCache {
    /// Tokens minted so far.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    /// The `Authorization` header of the current token and its generation, minting a token with
    /// `mint` first when there is none or it is due for renewal.
    pub async fn get<F, Fut>(&self, mint: F) -> Result<(HeaderValue, u64), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, ApiError>>,
    {
        let mut state = self.state.lock().await;
        if let Some(refusal) = &state.refused {
            return Err(ApiError::TokenRefused(refusal.clone()));
        }
        let now = Instant::now();
        if let Some(current) = &state.current {
            if current.renew_at.is_none_or(|at| now < at) {
                return Ok((current.header.clone(), state.generation));
            }
        }
        // The lifetime counts from when the request was sent: the server's clock started no
        // earlier, so the token is never used past its expiry.
        let token = match mint().await {
            Ok(token) => token,
            Err(ApiError::TokenRefused(refusal)) => {
                state.refused = Some(refusal.clone());
                return Err(ApiError::TokenRefused(refusal));
            }
            Err(e) => return Err(e),
        };
        let mut header =
            HeaderValue::from_str(bearer(&token.access_token).expose()).map_err(|_| {
                ApiError::Protocol {
                    url: "/oauth/tokens".into(),
                    reason: "the access token holds characters not allowed in an HTTP header"
                        .into(),
                }
            })?;
        header.set_sensitive(true);
        let renew_at = token
            .expires_in
            .map(|lifetime| now + lifetime - renewal_margin(lifetime));
        self.minted.fetch_add(1, Ordering::Relaxed);
        state.generation += 1;
        tracing::debug!(
            generation = state.generation,
            expires_in_s = token.expires_in.map(|d| d.as_secs()),
            "minted an OAuth access token"
        );
        state.current = Some(Current {
            header: header.clone(),
            renew_at,
        });
        Ok((header, state.generation))
    }

    /// Forgets the token of `generation` after Zendesk refused it (401), unless a newer one has
    /// been minted since: the next [`TokenCache::get`] mints.
    pub async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.generation == generation {
            state.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn token(lifetime: Option<u64>) -> Token {
        Token {
            access_token: Secret::new("minted"),
            expires_in: lifetime.map(Duration::from_secs),
        }
    }

    #[test]
    fn renewal_starts_a_fifth_of_the_lifetime_early_and_at_most_a_minute() {
        assert_eq!(
            renewal_margin(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(48 * 3600)),
            Duration::from_secs(60)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn many_concurrent_callers_cause_one_mint() {
        let cache = Arc::new(TokenCache::default());
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // A slow token endpoint: every caller arrives while the mint is in flight.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Ok(token(Some(300)))
                    })
                    .await
                    .unwrap()
                    .1
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 1, "everyone got the first token");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.minted(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_renewed_once_ahead_of_its_expiry() {
        let cache = TokenCache::default();
        let mint = || async { Ok(token(Some(300))) };
        assert_eq!(cache.get(mint).await.unwrap().1, 1);
        // 300 s with a 60 s margin: still current at 239 s, renewed at 240 s.
        tokio::time::advance(Duration::from_secs(239)).await;
        assert_eq!(cache.get(mint).await.unwrap().1, 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get(mint).await.unwrap().1, 2);
        assert_eq!(cache.get(mint).await.unwrap().1, 2);
        assert_eq!(cache.minted(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_without_expiry_is_never_renewed() {
        let cache = TokenCache::default();
        let mint = || async { Ok(token(None)) };
        cache.get(mint).await.unwrap();
        tokio::time::advance(Duration::from_secs(30 * 86_400)).await;
        assert_eq!(cache.get(mint).await.unwrap().1, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_replaced_once_however_many_workers_saw_the_401() {
        let cache = TokenCache::default();
        let mint = || async { Ok(token(Some(3600))) };
        let (_, refused) = cache.get(mint).await.unwrap();
        for _ in 0..4 {
            cache.invalidate(refused).await;
            let (_, now) = cache.get(mint).await.unwrap();
            assert_eq!(now, 2, "the later invalidations name a stale generation");
        }
        assert_eq!(cache.minted(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_by_the_token_endpoint_is_not_asked_again() {
        let cache = TokenCache::default();
        let calls = AtomicU64::new(0);
        for _ in 0..3 {
            let err = cache
                .get(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(ApiError::TokenRefused(TokenRefusal {
                        url: "http://127.0.0.1/oauth/tokens".into(),
                        status: 401,
                        error: "invalid_client".into(),
                        hint: "check the secret",
                    }))
                })
                .await
                .unwrap_err();
            assert!(err.is_fatal_for_run(), "{err}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.minted(), 0);
    }
}
