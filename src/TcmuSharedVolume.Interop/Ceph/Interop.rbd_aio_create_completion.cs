using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>The callback (rbd_callback_t: completion, arg) runs on a librbd thread when the request completes.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_aio_create_completion")]
    public static partial int rbd_aio_create_completion(nint callbackArg, delegate* unmanaged<nint, nint, void> completeCallback, nint* completion);
}
