//! The life of a queue worker, shared by the devices that have one (block,
//! entropy, SCSI): not started, running, or paused for a snapshot with its
//! handler and queues held (nothing touches guest memory), and back.

use super::worker::{QueueHandler, Worker};
use super::{ActiveQueue, Memory, SavedQueue};
use std::io;

#[derive(Default)]
pub enum Runner<H: QueueHandler + 'static> {
    #[default]
    Idle,
    Running(Worker<H>),
    Paused {
        handler: H,
        queues: Vec<ActiveQueue>,
        mem: Memory,
    },
}

impl<H: QueueHandler + 'static> Runner<H> {
    /// Start serving (the driver set DRIVER_OK).
    pub fn start(
        &mut self,
        name: &str,
        handler: H,
        queues: Vec<ActiveQueue>,
        mem: Memory,
    ) -> io::Result<()> {
        *self = Runner::Running(Worker::spawn(name, handler, queues, mem)?);
        Ok(())
    }

    /// Stop serving and hold everything (the request in progress is
    /// answered first); the queues' positions. Not started: no queues.
    pub fn pause(&mut self) -> io::Result<Vec<SavedQueue>> {
        if let Runner::Running(_) = self {
            let Runner::Running(w) = std::mem::replace(self, Runner::Idle) else {
                unreachable!()
            };
            let (handler, queues, mem) = w
                .stop()
                .ok_or_else(|| io::Error::other("the device thread had failed"))?;
            *self = Runner::Paused {
                handler,
                queues,
                mem,
            };
        }
        Ok(match self {
            Runner::Paused { queues, .. } => {
                queues.iter().map(|q| SavedQueue::of(&q.queue)).collect()
            }
            _ => Vec::new(),
        })
    }

    /// Serve again what [`Runner::pause`] held (whatever the driver added
    /// meanwhile is served at once).
    pub fn resume(&mut self, name: &str) -> io::Result<()> {
        if let Runner::Paused { .. } = self {
            let Runner::Paused {
                handler,
                queues,
                mem,
            } = std::mem::replace(self, Runner::Idle)
            else {
                unreachable!()
            };
            self.start(name, handler, queues, mem)?;
        }
        Ok(())
    }

    /// Drop the thread and the queues (driver reset).
    pub fn reset(&mut self) {
        *self = Runner::Idle;
    }
}
